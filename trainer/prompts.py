"""Prompts for a model: the chat template with the task's instructions, or the tiny model's raw format.

    from trainer.prompts import render_prompt, completion_token_budget, prompt_row
    text = render_prompt(task, sample, tokenizer)     # what generation is conditioned on (a string)
    row = prompt_row(task, sample, tokenizer)         # a GRPO dataset row: prompt, answer, problem, seed, index
    budget = completion_token_budget(task, tokenizer)  # max_new_tokens that fits a good completion

- An instruct model (a tokenizer with a chat template) gets one user message, `task.instruction(sample)`:
  the question plus the answer format its reward parses; the string ends with the assistant header.
- The built-in tiny character model (and `tokenizer=None`) keeps its raw format `task.prompt(sample)`
  ("Q:12+34\\n"), which its warm start was trained on.
Every peer and validator must render a record's prompt with this function and the run's tokenizer.
"""

from __future__ import annotations

from trainer.tasks import Sample, Task


def uses_chat_template(tokenizer) -> bool:
    """True for an instruct tokenizer with a chat template; False for None and the tiny char tokenizer."""
    from trainer.models import CHAT_TEMPLATE

    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    return bool(template) and template != CHAT_TEMPLATE


def render_prompt(task: Task, sample: Sample, tokenizer=None) -> str:
    """The prompt string for `sample`: chat-templated instructions, or the raw task prompt for the tiny model."""
    if not uses_chat_template(tokenizer):
        return task.prompt(sample)
    messages = [{"role": "user", "content": task.instruction(sample)}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_row(task: Task, sample: Sample, tokenizer=None) -> dict:
    """The dataset row of `sample` (GRPO prompts, swarm assignments, teacher records): the rendered prompt,
    the answer, the problem as Sample JSON (what rewards are recomputed from), its seed and index."""
    return {
        "prompt": render_prompt(task, sample, tokenizer),
        "answer": sample.answer,
        "problem": sample.to_json(),
        "seed": sample.seed,
        "index": sample.index,
    }


def completion_token_budget(task: Task, tokenizer=None, *, probe: int = 64, slack: int = 8) -> int:
    """Max new tokens: the longest teacher completion of `probe` train samples, in tokens, plus `slack`.

    Without a tokenizer (or for the character model) a character is a token.
    """
    traces = [task.teacher_trace(task.sample(0, i)) for i in range(probe)]
    if tokenizer is None:
        return max(map(len, traces)) + slack
    return max(len(tokenizer.encode(t, add_special_tokens=False)) for t in traces) + slack
