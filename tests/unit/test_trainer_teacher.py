"""The synthetic teacher: exact traces, and a deterministic flawed teacher that forgets the final carry."""

import pytest

from trainer.errors import TrainerConfigError
from trainer.sft import sft_dataset, teacher_completion, teacher_records
from trainer.tasks import ArithmeticTask, CountdownTask, Sample

TASK = ArithmeticTask(digits=2)


def test_flawed_trace_forgets_only_the_final_carry():
    carry = Sample("arithmetic", "train", 0, 0, "Q:47+58", "105", {"operands": [47, 58]})
    flawed = TASK.flawed_trace(carry)
    assert flawed == "<t>7+8+0=15|5\n4+5+1=10|05\n</t><a>05</a>"
    assert not TASK.verify(flawed, carry) and TASK.step_credit(flawed, carry) == pytest.approx(2 / 3)
    no_carry = Sample("arithmetic", "train", 0, 0, "Q:47+38", "85", {"operands": [47, 38]})
    assert TASK.flawed_trace(no_carry) is None
    assert CountdownTask().flawed_trace(CountdownTask().sample(0, 0)) is None


def test_flaw_rate_is_respected_and_deterministic():
    samples = [TASK.sample(0, i) for i in range(3000)]
    carries = [s for s in samples if TASK.flawed_trace(s) is not None]
    flawed = [s for s in carries if teacher_completion(TASK, s, 0.8) != TASK.teacher_trace(s)]
    exact = sum(a + b >= 100 for a in range(10, 100) for b in range(10, 100)) / 90**2  # 0.6
    assert abs(len(carries) / len(samples) - exact) < 0.04
    assert abs(len(flawed) / len(carries) - 0.8) < 0.04
    assert all(teacher_completion(TASK, s, 0.0) == TASK.teacher_trace(s) for s in carries)
    first = sft_dataset(TASK, seed=1, n=200, teacher_flaw_rate=0.5)
    assert first["completion"] == sft_dataset(TASK, seed=1, n=200, teacher_flaw_rate=0.5)["completion"]
    assert first["prompt"] == [TASK.prompt(TASK.sample(1, i)) for i in range(200)]


def test_teacher_records_are_seeded_verified_traces_of_one_split():
    task = ArithmeticTask(digits=2)
    records = list(teacher_records(task, seed=3, n=4, split="eval"))
    assert [(r["seed"], r["index"]) for r in records] == [(3, i) for i in range(4)]
    for i, r in enumerate(records):
        sample = task.sample(3, i, "eval")
        assert r["prompt"] == task.prompt(sample) and r["answer"] == sample.answer
        assert task.verify(r["completion"], sample)  # the teacher is right
    assert records == list(teacher_records(task, seed=3, n=4, split="eval"))  # (seed, i) decides everything
    with pytest.raises(TrainerConfigError, match="--split 'test' is not a split: use train or eval"):
        teacher_records(task, seed=3, n=4, split="test")  # refused before anything is written
