"""The trainer CLI end to end: tiny model -> synthetic data -> eval report; bad input -> one line, exit 2."""

import json
import os
import subprocess
import sys

import pytest

HIVETUNE = [sys.executable, "-m", "coordination.cli.app"]


def hivetune(*args, env=None, timeout=180):
    return subprocess.run(
        [*HIVETUNE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {}), "COLUMNS": "400"},
    )


@pytest.mark.slow
def test_tiny_model_data_and_eval(tmp_path):
    model = tmp_path / "tiny"
    assert hivetune("tiny-model", "--out", str(model), "--seed", "1").returncode == 0
    data = tmp_path / "traces.jsonl"
    done = hivetune(
        "data", "generate", "--task", "countdown", "--param", "count=3", "--n", "25", "--seed", "4", "--out", str(data)
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in data.read_text().splitlines()]
    assert len(records) == 25 and [r["index"] for r in records] == list(range(25))
    from trainer.tasks import Sample, get_task

    task = get_task("countdown", count=3)
    assert all(task.verify(r["completion"], Sample.from_json(r["problem"])) for r in records)
    assert Sample.from_json(records[7]["problem"]) == task.sample(4, 7)

    out = tmp_path / "eval"
    done = hivetune(
        "eval",
        "--model",
        str(model),
        "--task",
        "arithmetic",
        "--param",
        "digits=1",
        "--n",
        "8",
        "--seed",
        "2",
        "--out",
        str(out),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["n"] == 8 and result["accuracy"] == 0.0  # an untrained model cannot add
    assert (out / "eval.json").exists() and (out / "eval.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "generate", "--task", "sudoku", "--out", "x.jsonl"], "unknown task 'sudoku': choose one of"),
        (["data", "generate", "--param", "digits", "--out", "x.jsonl"], "task parameter 'digits' is not key=value"),
        (["eval", "--model", "/no/model", "--task", "arithmetic"], "model '/no/model' not found locally"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    done = subprocess.run(
        [*HIVETUNE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_broken_dataset_line_through_eval(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    done = hivetune(
        "eval",
        "--model",
        "tiny",
        "--task",
        "gsm8k",
        "--param",
        f"path={bad}",
        "--n",
        "2",
        env={"HIVETUNE_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 2 and f"{bad}:2: not valid JSON" in done.stderr
