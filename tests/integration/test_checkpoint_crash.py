"""kill -9 during `add` or `get`: no visible partial block or file, and a rerun finishes with the right CID/bytes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coordination.checkpoints.atomic_files import TEMP_PREFIX
from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter

pytestmark = pytest.mark.slow

PRELUDE = "import sys; from coordination.checkpoints import CheckpointStore; store = CheckpointStore(sys.argv[1]);"
ADD = PRELUDE + "store.add_adapter(sys.argv[2], base_model='m')"
GET = PRELUDE + "store.get(sys.argv[2], sys.argv[3])"


@pytest.fixture
def adapter(tmp_path) -> Path:
    """~24 MB over several files: many 1 MiB chunks, so a kill lands mid-way."""
    directory = write_synthetic_adapter(tmp_path / "adapter", megabytes=16, seed=3)
    for i in range(2):
        (directory / f"optimizer_shard_{i}.bin").write_bytes(os.urandom(4 << 20))
    return directory


@pytest.fixture
def spawn():
    started = []

    def run(*args) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def kill_when(proc: subprocess.Popen, condition, delay: float) -> None:
    """SIGKILL `proc` `delay` seconds after `condition()` first holds; fail if it finished first."""
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, f"finished before the kill point: {proc.stderr.read().decode()[-500:]}"
        assert time.monotonic() < deadline, "no progress within 60 s"
        time.sleep(0.002)
    time.sleep(delay)
    assert proc.poll() is None, "finished before the kill: make the file set larger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def visible_blocks(store: CheckpointStore) -> list:
    return list(store.blocks)


def block_count(store: CheckpointStore) -> int:
    return sum(1 for _ in store.blocks.blocks_dir.rglob("b*")) if store.blocks.blocks_dir.is_dir() else 0


@pytest.mark.parametrize("after_blocks", [1, 8])  # of ~24: the kill point depends on progress, not on timing
def test_kill_during_add_leaves_only_whole_blocks_and_rerun_completes(tmp_path, adapter, spawn, after_blocks):
    expected = CheckpointStore(tmp_path / "reference").add_adapter(adapter, base_model="m")
    store = CheckpointStore(tmp_path / "store")
    proc = spawn(ADD, str(store.root), str(adapter))
    kill_when(proc, lambda: block_count(store) >= after_blocks, 0.0)
    blocks = visible_blocks(store)
    assert blocks, "the kill should have landed after some blocks were written"
    assert all(store.blocks.check(cid) for cid in blocks), "a visible block must never be partial"
    assert not store.quarantine_dir.exists()
    assert store.pinned() == [], "the checkpoint must not be pinned before it is complete"
    assert store.add_adapter(adapter, base_model="m") == expected
    assert store.verify(expected).ok
    store.gc()
    assert not list(store.root.rglob(f"{TEMP_PREFIX}*"))


def staged_bytes(tmp_path: Path) -> int:
    """Bytes staged so far by a running `get` (-1 before staging starts); files may vanish as it renames them."""
    staging = list(tmp_path.glob(f"{TEMP_PREFIX}out-*"))
    if not staging:
        return -1
    try:
        return sum(f.stat().st_size for d in staging for f in d.rglob("*") if f.is_file())
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("after_bytes", [0, 4 << 20])  # kill once staging began / 4 MiB of ~24 are staged
def test_kill_during_get_leaves_no_partial_dir_and_rerun_completes(tmp_path, adapter, spawn, after_bytes):
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(adapter, base_model="m")
    out = tmp_path / "out"
    proc = spawn(GET, str(store.root), cid, str(out))
    kill_when(proc, lambda: staged_bytes(tmp_path) >= after_bytes, 0.0)
    assert not out.exists(), "the target dir must appear only when complete"
    store.get(cid, out)
    for path in adapter.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes()
