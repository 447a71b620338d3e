"""GSM8K-format loader: local files through `datasets`, broken lines named, a disjoint eval split."""

import json

import pytest

from trainer.errors import DatasetFormatError
from trainer.tasks import get_task
from trainer.tasks.gsm8k import parse_number

ROWS = [
    {
        "question": f"Tom has {i} apples and buys {i + 3}. How many?",
        "answer": f"He has {i}+{i + 3}=<<{i}+{i + 3}={2 * i + 3}>>{2 * i + 3} apples.\n#### {2 * i + 3}",
    }
    for i in range(60)
]


@pytest.fixture
def gsm_file(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_gsm8k_samples_verify_and_strip_calculator_notes(gsm_file):
    task = get_task("gsm8k", path=str(gsm_file), eval_fraction=0.2)
    sample = task.sample(0, 0)
    trace = task.teacher_trace(sample)
    assert "<<" not in trace and task.verify(trace, sample)
    assert not task.verify(trace.replace(f"<a>{sample.answer}</a>", f"<a>{int(sample.answer) + 1}</a>"), sample)
    assert task.verify(f"<t>x</t><a>{int(sample.answer):,}.</a>", sample)  # "1,234." style numbers accepted


def test_gsm8k_split_is_disjoint_and_sampling_reproducible(gsm_file):
    task = get_task("gsm8k", path=str(gsm_file), eval_fraction=0.2)
    train = {task.sample(0, i).question for i in range(200)}
    evals = {task.sample(0, i, "eval").question for i in range(200)}
    assert train.isdisjoint(evals) and len(train) + len(evals) == len(ROWS)
    assert task.sample(4, 2**48) == task.sample(4, 2**48)


def test_gsm8k_separate_eval_file(gsm_file, tmp_path):
    eval_file = tmp_path / "test.jsonl"
    eval_file.write_text(json.dumps(ROWS[0]) + "\n")
    task = get_task("gsm8k", path=str(gsm_file), eval_path=str(eval_file))
    assert task.sample(0, 5, "eval").question == ROWS[0]["question"]


def test_broken_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"question": "x", "answer": \n')
    with pytest.raises(DatasetFormatError, match=r"bad.jsonl:2: not valid JSON .*fix or delete that line"):
        get_task("gsm8k", path=str(path)).sample(0, 0)
    path.write_text(json.dumps({"q": 1}) + "\n")
    with pytest.raises(DatasetFormatError, match=r"bad.jsonl:1: a record needs string fields 'question' and 'answer'"):
        get_task("gsm8k", path=str(path)).sample(0, 0)


def test_missing_file_and_unreachable_hub(tmp_path):
    with pytest.raises(DatasetFormatError, match="does not exist"):
        get_task("gsm8k", path=str(tmp_path / "nope.jsonl")).sample(0, 0)
    with pytest.raises(DatasetFormatError, match="not found locally and the hub is unreachable"):
        get_task("gsm8k", path="no-such-org/no-such-dataset").sample(0, 0)


def test_parquet_loads(tmp_path):
    import datasets

    path = tmp_path / "train.parquet"
    datasets.Dataset.from_list(ROWS).to_parquet(str(path))
    task = get_task("gsm8k", path=str(path))
    sample = task.sample(1, 1)
    assert task.verify(task.teacher_trace(sample), sample)


def test_parse_number():
    assert parse_number("1,234") == 1234 and parse_number("$5") == 5 and parse_number("2.50") * 2 == 5
    assert parse_number("five") is None and parse_number("") is None
