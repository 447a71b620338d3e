"""reasoning-gym tasks: seeded per (seed, index), split-disjoint, scored by the dataset's own scorer."""

import pytest

from trainer.errors import TrainerConfigError
from trainer.rewards import score
from trainer.tasks import Sample, get_task
from trainer.tasks.gym import final_answer

CHAIN = dict(dataset="chain_sum", config="min_terms=2,max_terms=2,min_digits=1,max_digits=2")


def test_a_problem_is_a_pure_function_of_seed_and_index():
    a, b = get_task("gym", **CHAIN), get_task("gym", **CHAIN)
    assert a.sample(3, 17) == b.sample(3, 17)
    assert a.sample(3, 17) != a.sample(3, 18)
    # reasoning-gym itself draws item i from Random(seed + i); our (seed, index) pairs must not alias
    assert a.sample(0, 1).question != a.sample(1, 0).question or a.sample(0, 1).answer != a.sample(1, 0).answer


def test_train_and_eval_never_share_a_question():
    task = get_task("gym", **CHAIN)
    train = {task.sample(0, i).question for i in range(300)}
    held_out = {task.sample(0, i, split="eval").question for i in range(100)}
    assert not train & held_out


def test_the_datasets_scorer_is_the_reward():
    task = get_task("gym", **CHAIN)
    sample = task.sample(0, 5)
    gold = eval(sample.data["entry"]["metadata"]["expression"])  # noqa: S307 - our own generated "a + b"
    assert str(gold) == sample.answer
    assert task.verify(sample.answer, sample)
    assert task.verify(f"The final answer is {sample.answer}.", sample)
    assert task.verify(f"<answer>{sample.answer}</answer>", sample)
    assert not task.verify(str(int(sample.answer) + 1), sample)
    assert score(task, sample, sample.answer) == {"correctness": 1.0, "format": 1.0, "steps": 0.0}
    assert score(task, sample, f"x\n{sample.answer}")["format"] == 0.0  # not a single answer line


def test_a_sample_round_trips_through_json_and_still_scores():
    task = get_task("gym", dataset="leg_counting", config="min_animals=1,max_animals=2")
    sample = task.sample(2, 9)
    again = Sample.from_json(sample.to_json())
    assert again == sample and task.verify(again.answer, again)


@pytest.mark.parametrize("junk", ["", "\x00\x01", "<answer></answer>", "9" * 10_000, None, 42, [{"content": 1}]])
def test_junk_scores_zero_and_never_raises(junk):
    task = get_task("gym", **CHAIN)
    sample = task.sample(0, 0)
    assert score(task, sample, junk)["correctness"] == 0.0


def test_final_answer_parsing():
    assert final_answer("The final answer to the arithmetic problem is 10.") == "10"
    assert final_answer("work\nAnswer: -4") == "-4"
    assert final_answer("<a> 7 </a> trailing") == "7"
    assert final_answer("2 + 3 = 5") == "5"
    assert final_answer("   \n ") is None


def test_math_verify_accepts_equal_numbers_the_scorer_rejects():
    loose = get_task(
        "gym", dataset="basic_arithmetic", config="min_terms=2,max_terms=2,min_digits=1,max_digits=1", math_verify=True
    )
    sample = loose.sample(0, 0)
    assert loose.verify(f"{sample.answer}.0", sample)
    assert not loose.verify("12345678", sample)


def test_unknown_dataset_or_field_is_a_config_error():
    with pytest.raises(TrainerConfigError, match="nonexistent"):
        get_task("gym", dataset="nonexistent")
    with pytest.raises(TrainerConfigError, match="chain_sum"):
        get_task("gym", dataset="chain_sum", config="no_such_field=1")


def test_reasoning_style_asks_for_and_rewards_an_answer_line():
    task = get_task("gym", **CHAIN, style="reasoning")
    sample = task.sample(0, 1)
    assert "Answer: <answer>" in task.instruction(sample)
    good = f"First add the ones.\nAnswer: {sample.answer}"
    assert score(task, sample, good) == {"correctness": 1.0, "format": 1.0, "steps": 0.0}
    assert score(task, sample, sample.answer)["format"] == 0.0
    assert task.sample(0, 1) == get_task("gym", **CHAIN).sample(0, 1)  # the style changes the prompt, not the problem
