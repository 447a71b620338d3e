"""Prompts: the tiny char model keeps its raw format; instruct tokenizers get the chat template; budgets in tokens."""

from trainer.models import build_char_tokenizer
from trainer.prompts import completion_token_budget, prompt_row, render_prompt, uses_chat_template
from trainer.tasks import get_task

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def chat_tokenizer():
    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = CHATML
    return tokenizer


def test_tiny_model_and_no_tokenizer_keep_the_raw_prompt():
    task = get_task("arithmetic", digits=2)
    sample = task.sample(0, 0)
    assert not uses_chat_template(build_char_tokenizer()) and not uses_chat_template(None)
    assert render_prompt(task, sample, build_char_tokenizer()) == task.prompt(sample) == f"{sample.question}\n"
    assert render_prompt(task, sample) == task.prompt(sample)


def test_instruct_tokenizer_gets_instructions_and_the_answer_format_the_reward_parses():
    task = get_task("arithmetic", digits=2)
    sample = task.sample(0, 0)
    text = render_prompt(task, sample, chat_tokenizer())
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_start|>assistant\n")
    assert sample.question.removeprefix("Q:") in text and "<a></a>" in text
    gym = get_task("gym", dataset="chain_sum", config="min_terms=2,max_terms=2")
    gym_sample = gym.sample(0, 0)
    assert "final answer, alone on the last line" in render_prompt(gym, gym_sample, chat_tokenizer())


class WordTokenizer:
    """One token per whitespace-separated word: tokens and characters differ."""

    def encode(self, text, add_special_tokens=False):
        return text.split()


def test_budget_counts_tokens_not_characters():
    task = get_task("arithmetic", digits=2)
    chars = completion_token_budget(task)
    assert chars == task.max_completion_chars()  # characters, as before, for the char model
    assert completion_token_budget(task, build_char_tokenizer()) == chars
    words = completion_token_budget(task, WordTokenizer())
    longest = max(len(task.teacher_trace(task.sample(0, i)).split()) for i in range(64))
    assert words == longest + 8 < chars


def test_grpo_prompts_and_teacher_records_are_built_from_one_row():
    from trainer.grpo import prompt_dataset
    from trainer.sft import teacher_records

    task, tokenizer = get_task("arithmetic", digits=2), chat_tokenizer()
    row = prompt_row(task, task.sample(4, 7), tokenizer)
    assert row == {"prompt": render_prompt(task, task.sample(4, 7), tokenizer), "answer": task.sample(4, 7).answer,
                   "problem": task.sample(4, 7).to_json(), "seed": 4, "index": 7}  # fmt: skip
    assert prompt_dataset(task, 4, [7], tokenizer=tokenizer).to_list() == [row]
    record = next(teacher_records(task, seed=4, n=8))  # sample (4, 0), raw prompt
    assert record == {**prompt_row(task, task.sample(4, 0)), "completion": task.teacher_trace(task.sample(4, 0))}
