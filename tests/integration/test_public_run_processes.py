"""The demo's process layer (recipes/public_run/processes.py): argv of `hivetune` commands, each child's
`--json` report read from its stdout, failures with the end of the child's log, and process groups stopped."""

import os
import signal
import time
from pathlib import Path

import pytest

from recipes.public_run.processes import Processes, hivetune, json_object

RUN = Path(__file__).parents[2] / "recipes" / "runs" / "arith_tiny.yaml"


def test_hivetune_argv_spells_options_repeats_lists_and_drops_none():
    argv = hivetune("join", "x", run=Path("r.yaml"), epoch=[0, 1], serve=True, key_file=None, **{"from": "promoted"})
    assert argv == ["join", "x", "--run", "r.yaml", "--epoch", "0", "--epoch", "1", "--serve", "--from", "promoted"]


@pytest.mark.parametrize(
    "line, report",
    [('{"a": 1}\n', {"a": 1}), ("{'loss': 0.1}\n", None), ("[1, 2]\n", None), ("/ip4/127.0.0.1/tcp/1\n", None)],
)
def test_only_a_json_object_line_is_a_report(line, report):
    assert json_object(line) == report


def test_a_one_shot_command_returns_its_json_line_from_stdout(tmp_path):
    from trainer.base_models import base_dir_cid
    from trainer.models import create_tiny_model

    model = create_tiny_model(tmp_path / "m", seed=0, num_hidden_layers=1, hidden_size=32, intermediate_size=64)
    procs = Processes(tmp_path / "logs")
    report = procs.run("base-model", hivetune("base-model", model))
    assert report == {"base": str(model), "path": str(model), "cid": base_dir_cid(model)}
    assert f'"cid": "{report["cid"]}"' in (tmp_path / "logs" / "base-model.log").read_text()  # stdout copied there
    assert not procs.running


def test_a_failing_command_raises_with_the_end_of_its_log(tmp_path, monkeypatch):
    monkeypatch.delenv("HIVETUNE_KEY", raising=False)
    procs = Processes(tmp_path / "logs")
    with pytest.raises(RuntimeError, match=r"`hivetune validate` \(v\) failed: .*--key-file"):
        procs.run("v", hivetune("validate", run=RUN, epoch=0, records_dir=tmp_path))


@pytest.mark.network
def test_a_long_running_child_reports_then_stop_all_ends_its_process_group(tmp_path):
    procs = Processes(tmp_path / "logs")
    boot = procs.start("bootstrap", hivetune("bootstrap", run=RUN, host_maddr="/ip4/127.0.0.1/tcp/0"))
    report = procs.wait_report("bootstrap", timeout=120)
    assert report["maddrs"] and all(m.startswith("/ip4/127.0.0.1/tcp/") for m in report["maddrs"])
    assert procs.report("bootstrap") == report and boot.proc.poll() is None  # it reported and stays up
    procs.stop_all()
    assert boot.proc.returncode is not None and not procs.running
    assert group_gone(boot.proc.pid, within_s=10), "a process of the child's group outlived stop_all"


@pytest.mark.network
def test_stop_all_ends_the_children_of_a_child_that_crashed(tmp_path):
    procs = Processes(tmp_path / "logs")
    boot = procs.start("bootstrap", hivetune("bootstrap", run=RUN, host_maddr="/ip4/127.0.0.1/tcp/0"))
    procs.wait_report("bootstrap", timeout=120)  # up: its p2p daemon runs in its process group
    os.kill(boot.proc.pid, signal.SIGKILL)  # the leader dies at once, leaving the daemon behind
    boot.proc.wait(10)
    assert not group_gone(boot.proc.pid, within_s=1)
    procs.stop_all()
    assert group_gone(boot.proc.pid, within_s=10), "the crashed child's own children outlived stop_all"


def group_gone(pgid: int, *, within_s: float) -> bool:
    """True once no process is left in group `pgid` (killed members linger as zombies until reaped)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False
