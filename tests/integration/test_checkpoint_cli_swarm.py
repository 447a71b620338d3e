"""`hivetune checkpoint serve` on one process, `hivetune checkpoint get --initial-peers` on another (loopback)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter

pytestmark = [pytest.mark.network, pytest.mark.slow]

CLI = [sys.executable, "-m", "coordination.cli.app", "checkpoint"]


@pytest.fixture
def serving(tmp_path):
    store = CheckpointStore(tmp_path / "source")
    cid = store.add_adapter(write_synthetic_adapter(tmp_path / "adapter", megabytes=3), base_model="hivetune/tiny")
    command = CLI + [
        "serve",
        "--store",
        str(store.root),
        "--prefix",
        "cli-test",
        "--host-maddr",
        "/ip4/127.0.0.1/tcp/0",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        peers, deadline = [], time.monotonic() + 120
        while not peers:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, f"serve died: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "serve printed no peer address in 120 s"
            if line.startswith("peer: "):
                peers.append(line.removeprefix("peer: ").strip())
        yield cid, peers
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_get_with_initial_peers_fetches_from_a_serving_peer(tmp_path, serving):
    cid, peers = serving
    out = tmp_path / "out"
    command = CLI + ["get", cid, "--to", str(out), "--store", str(tmp_path / "fetcher"), "--prefix", "cli-test"]
    for peer in peers:
        command += ["--initial-peers", peer]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, start_new_session=True)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (out / name).read_bytes() == (tmp_path / "adapter" / name).read_bytes()
    assert CheckpointStore(tmp_path / "fetcher").pinned() == [cid]
