"""Rewards: hand-made completions get the hand-computed scores; junk scores 0 and never raises."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trainer.grpo import prompt_dataset
from trainer.rewards import DEFAULT_WEIGHTS, reward_functions, score, weighted_reward
from trainer.tasks import ArithmeticTask, Sample

TASK = ArithmeticTask(digits=2)
SAMPLE = Sample("arithmetic", "train", 0, 0, "Q:47+38", "85", {"operands": [47, 38]})
RIGHT = "<t>7+8+0=15|5\n4+3+1=8|85\n</t><a>85</a>"
HALF = "<t>7+8+0=15|5\n4+3+1=9|95\n</t><a>95</a>"


def call(func, completions, sample=SAMPLE):
    return func(
        prompts=["Q:47+38\n"] * len(completions),
        completions=completions,
        problem=[sample.to_json()] * len(completions),
    )


def test_hand_made_completions():
    correctness, fmt, steps = reward_functions(TASK)
    completions = [RIGHT, HALF, "<a>85</a>", "85", "<t>\n</t><a>85</a> trailing", ""]
    assert call(correctness, completions) == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    assert call(fmt, completions) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert call(steps, completions) == [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    assert [f.__name__ for f in (correctness, fmt, steps)] == ["correctness_reward", "format_reward", "steps_reward"]


def test_weighted_reward_is_the_weighted_sum():
    expected = DEFAULT_WEIGHTS["correctness"] * 0 + DEFAULT_WEIGHTS["format"] * 1 + DEFAULT_WEIGHTS["steps"] * 0.5
    assert weighted_reward(TASK, SAMPLE, HALF) == pytest.approx(expected)
    assert score(TASK, SAMPLE, RIGHT) == {"correctness": 1.0, "format": 1.0, "steps": 1.0}


def test_chat_style_completions_are_read():
    correctness = reward_functions(TASK, ["correctness"])[0]
    assert call(correctness, [[{"role": "assistant", "content": RIGHT}]]) == [1.0]


def test_rewards_read_the_problem_column_of_prompt_dataset():
    dataset = prompt_dataset(TASK, seed=2, indices=range(8))
    assert dataset.column_names == ["prompt", "answer", "problem", "seed", "index"]
    samples = [Sample.from_json(p) for p in dataset["problem"]]
    traces = [TASK.teacher_trace(s) for s in samples]
    correctness = reward_functions(TASK, ["correctness"])[0]
    assert correctness(prompts=dataset["prompt"], completions=traces, problem=dataset["problem"]) == [1.0] * 8
    assert samples == [TASK.sample(2, i) for i in range(8)]  # a validator regenerates the same samples


def test_missing_problem_column_is_a_clear_error():
    with pytest.raises(ValueError, match="need the dataset column 'problem'"):
        reward_functions(TASK)[0](prompts=["x"], completions=["y"])
    with pytest.raises(ValueError, match="unknown reward"):
        reward_functions(TASK, ["length"])


JUNK = st.one_of(
    st.text(max_size=200),
    st.none(),
    st.integers(),
    st.lists(st.integers(), max_size=3),
    st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=2), max_size=2),
    st.text(max_size=20).map(lambda t: "<t>" * 3 + t + "</a>" * 2),
)


@settings(max_examples=300, deadline=None)
@given(junk=JUNK)
def test_rewards_never_raise_on_junk(junk):
    for func in reward_functions(TASK):
        (value,) = call(func, [junk])
        assert 0.0 <= value <= 1.0
