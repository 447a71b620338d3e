"""`hivetune checkpoint ...` end to end on a temp store (CliRunner, plus one subprocess for the exit code)."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from coordination.checkpoints import CheckpointStore, resolve_adapter
from coordination.checkpoints.synthetic import write_synthetic_adapter
from coordination.cli.app import app
from coordination.errors import CheckpointError, MissingBlockError

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, ["checkpoint", *map(str, args)], catch_exceptions=False)
    return result


def test_add_ls_verify_get_export_import_gc(tmp_path):
    adapter = write_synthetic_adapter(tmp_path / "adapter", megabytes=1.5)
    store = tmp_path / "store"
    added = invoke("add", adapter, "--run-id", "r", "--step", "0", "--store", store)
    assert added.exit_code == 0
    cid = added.stdout.strip()
    assert cid == CheckpointStore(store).add_adapter(adapter, base_model="hivetune/tiny", run_id="r", step=0)
    rows = json.loads(invoke("ls", "--json", "--store", store).stdout)
    assert [(r["cid"], r["step"], r["pinned"]) for r in rows] == [(cid, 0, True)]
    assert invoke("verify", cid, "--store", store).exit_code == 0
    assert invoke("get", cid, "--to", tmp_path / "out", "--store", store).exit_code == 0
    assert (tmp_path / "out" / "adapter_model.safetensors").read_bytes() == (
        adapter / "adapter_model.safetensors"
    ).read_bytes()
    assert "wrote 4 blocks" in invoke("export", cid, "--car", tmp_path / "c.car", "--store", store).stdout
    assert invoke("import", tmp_path / "c.car", "--store", tmp_path / "other").stdout.strip() == cid
    assert invoke("unpin", cid, "--store", store).exit_code == 0
    assert "removed 4 blocks" in invoke("gc", "--store", store).stdout


def test_verify_exits_1_and_names_the_corrupt_block(tmp_path):
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(write_synthetic_adapter(tmp_path / "a", megabytes=1.5), base_model="m")
    chunk = str(store.manifest(cid)["files"][1]["chunks"][0])
    path = store.blocks.path_of(chunk)
    path.write_bytes(b"x" + path.read_bytes()[1:])
    result = invoke("verify", cid, "--json", "--store", store.root)
    report = json.loads(result.stdout)
    assert result.exit_code == 1 and not report["ok"] and report["corrupt"] == [chunk]


def test_bad_input_prints_one_line_and_exits_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "coordination.cli.app", "checkpoint", "get", "nonsense", "--to", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env={"HIVETUNE_STORE": str(tmp_path / "s"), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert result.returncode == 2
    assert "error:" in result.stderr and "is not a CID" in result.stderr and "Traceback" not in result.stderr


def test_resolve_adapter_accepts_a_dir_or_a_cid(tmp_path):
    adapter = write_synthetic_adapter(tmp_path / "adapter", megabytes=1.5)
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(adapter, base_model="m")
    assert resolve_adapter(adapter, store) == adapter
    checkout = resolve_adapter(cid, store)
    assert checkout == store.checkouts_dir / cid
    assert (checkout / "adapter_model.safetensors").read_bytes() == (
        adapter / "adapter_model.safetensors"
    ).read_bytes()
    (checkout / "adapter_config.json").write_text("{}")  # a tampered checkout is rebuilt, never reused
    assert (resolve_adapter(cid, store) / "adapter_config.json").read_bytes() == (
        adapter / "adapter_config.json"
    ).read_bytes()


def test_resolve_adapter_errors_for_unknown_inputs(tmp_path):
    store = CheckpointStore(tmp_path / "store")
    with pytest.raises(CheckpointError, match="neither an adapter directory nor a checkpoint CID"):
        resolve_adapter(tmp_path / "missing", store)
    with pytest.raises(MissingBlockError, match="fetch it from peers"):
        resolve_adapter("bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", store)


def test_resolve_adapter_names_both_readings_of_a_bad_argument(tmp_path):
    with pytest.raises(CheckpointError, match="neither an adapter directory nor a checkpoint CID"):
        resolve_adapter("no-such-adapter", CheckpointStore(tmp_path / "store"))


def test_resolve_adapter_refuses_a_directory_that_is_not_a_peft_adapter(tmp_path):
    (tmp_path / "weights-only").mkdir()
    with pytest.raises(CheckpointError, match="has no adapter_config.json: pass a PEFT adapter directory"):
        resolve_adapter(tmp_path / "weights-only", CheckpointStore(tmp_path / "store"))
