"""Peer-to-peer transfer on loopback: announce in the DHT, fetch in parallel, resume, skip lying peers; and the
request/response service under it (coordination.p2p_service, which rollout records are served through too)."""

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import closing

import pytest

from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter
from coordination.errors import FetchError
from coordination.p2p_service import FOUND, NOT_FOUND, P2PService, ask, connect, read_frame, replicate_p2p

pytestmark = [pytest.mark.network, pytest.mark.slow]

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]


@pytest.fixture(scope="module")
def dhts():
    """Three DHT peers (holder A, holder B, fetcher C), started before any server thread exists."""
    import hivemind

    first = hivemind.DHT(host_maddrs=LOOPBACK, start=True)
    peers = [str(m) for m in first.get_visible_maddrs()]
    nodes = [first] + [hivemind.DHT(host_maddrs=LOOPBACK, initial_peers=peers, start=True) for _ in range(2)]
    yield nodes
    for node in nodes:
        node.shutdown()


@pytest.fixture
def checkpoint(tmp_path):
    store = CheckpointStore(tmp_path / "source")
    cid = store.add_adapter(write_synthetic_adapter(tmp_path / "adapter", megabytes=5.5), base_model="hivetune/tiny")
    return store, cid


def server_class(kind: str):
    from coordination.checkpoints.server import CheckpointServer

    class CountingServer(CheckpointServer):
        """Honest, but counts what it serves."""

        served: list[str]

        def read_block(self, cid):
            data = super().read_block(cid)
            self.served = getattr(self, "served", []) + ([cid] if data is not None else [])
            return data

    class SlowServer(CountingServer):
        """Honest, 0.1 s per block: slow enough to kill a fetcher mid-way."""

        def read_block(self, cid):
            time.sleep(0.1)
            return super().read_block(cid)

    class LyingServer(CountingServer):
        """Serves every block with one flipped byte."""

        def read_block(self, cid):
            data = super().read_block(cid)
            return None if data is None else bytes([data[0] ^ 0xFF]) + data[1:]

    return {"honest": CountingServer, "slow": SlowServer, "lying": LyingServer}[kind]


@pytest.fixture
def serve(request):
    servers = []

    def start(kind, *, dht, store, cid):
        server = server_class(kind)(dht=dht, store=store, prefix=request.node.name).start()
        servers.append(server)
        server.announce(cid)
        return server

    yield start
    for server in servers:
        server.stop()


def fetch(dht, cid, store, request, **kwargs):
    from coordination.checkpoints.fetch import fetch_checkpoint

    return fetch_checkpoint(dht, cid, store, prefix=request.node.name, timeout=60, **kwargs)


def test_fetch_by_cid_gives_a_verified_pinned_byte_identical_checkpoint(tmp_path, dhts, checkpoint, serve, request):
    source, cid = checkpoint
    server = serve("honest", dht=dhts[0], store=source, cid=cid)
    fetched = CheckpointStore(tmp_path / "fetched")
    sizes = []
    assert fetch(dhts[2], cid, fetched, request, on_block=sizes.append) == cid
    assert fetched.verify(cid).ok and fetched.pinned() == [cid]
    assert sorted(server.served) == sorted(map(str, source.checkpoint_blocks(cid)))
    assert sum(sizes) == sum(e["size"] for e in source.manifest(cid)["files"])
    out = fetched.get(cid, tmp_path / "out")
    assert (out / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "adapter" / "adapter_model.safetensors"
    ).read_bytes()


def test_fetch_resumes_requesting_only_missing_blocks(tmp_path, dhts, checkpoint, serve, request):
    source, cid = checkpoint
    server = serve("honest", dht=dhts[0], store=source, cid=cid)
    fetched = CheckpointStore(tmp_path / "fetched")
    blocks = source.checkpoint_blocks(cid)
    already = blocks[:4]  # manifest + 3 chunks survived an interrupted fetch
    for block in already:
        target = fetched.blocks.path_of(block)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source.blocks.path_of(block), target)
    damaged = fetched.blocks.path_of(blocks[3])  # ...but one of them was damaged: it must be re-fetched
    damaged.write_bytes(damaged.read_bytes()[:-1])
    fetch(dhts[2], cid, fetched, request)
    assert sorted(server.served) == sorted(map(str, blocks[3:]))
    assert fetched.verify(cid).ok and (fetched.quarantine_dir / str(blocks[3])).is_file()


def test_a_peer_serving_bad_bytes_is_logged_and_skipped(tmp_path, dhts, checkpoint, serve, request, caplog):
    source, cid = checkpoint
    liar = serve("lying", dht=dhts[0], store=source, cid=cid)
    honest = serve("honest", dht=dhts[1], store=source, cid=cid)
    fetched = CheckpointStore(tmp_path / "fetched")
    with caplog.at_level(logging.WARNING, logger="coordination.checkpoints.fetch"):
        fetch(dhts[2], cid, fetched, request, max_parallel=2)
    assert fetched.verify(cid).ok
    lies = [r.getMessage() for r in caplog.records if "do not match" in r.getMessage()]
    assert lies and all(str(dhts[0].peer_id) in lie for lie in lies)
    # once caught, the liar is never asked again: only requests already in flight can hit it
    assert len(liar.served) == len(lies) <= 2
    assert sorted(honest.served) == sorted(map(str, source.checkpoint_blocks(cid)))


def test_only_lying_peers_give_a_fetch_error_and_write_nothing(tmp_path, dhts, checkpoint, serve, request):
    source, cid = checkpoint
    serve("lying", dht=dhts[0], store=source, cid=cid)
    fetched = CheckpointStore(tmp_path / "fetched")
    with pytest.raises(FetchError, match="no holder could serve a valid block"):
        fetch(dhts[2], cid, fetched, request)
    assert list(fetched.blocks) == [] and fetched.pinned() == []


def test_a_checkpoint_nobody_announces_fails_fast(tmp_path, dhts, checkpoint, request):
    _, cid = checkpoint
    with pytest.raises(FetchError, match="no peer announces"):
        fetch(dhts[2], cid, CheckpointStore(tmp_path / "fetched"), request)


def test_a_server_only_serves_checkpoints_it_announced(tmp_path, dhts, checkpoint, serve, request):
    from coordination.checkpoints.protocol import announce

    source, cid = checkpoint
    (tmp_path / "adapter" / "adapter_config.json").write_text('{"private": true}')
    private = source.add_adapter(tmp_path / "adapter", base_model="hivetune/tiny")
    server = serve("honest", dht=dhts[0], store=source, cid=cid)
    assert server.read_block(private) is None and server.read_block(cid) is not None
    # a (forged) DHT record claiming the server holds `private`: the server answers NOT_FOUND
    assert announce(dhts[0], request.node.name, private, server.maddrs)
    with pytest.raises(FetchError, match="no holder could serve a valid block"):
        fetch(dhts[2], private, CheckpointStore(tmp_path / "fetched"), request)
    assert private not in server.served


FETCHER = """
import sys, hivemind
from coordination.checkpoints import CheckpointStore
from coordination.checkpoints.fetch import fetch_checkpoint
dht = hivemind.DHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], initial_peers=sys.argv[4:], start=True)
fetch_checkpoint(dht, sys.argv[2], CheckpointStore(sys.argv[1]), prefix=sys.argv[3], max_parallel=2)
"""


def test_kill_9_during_fetch_leaves_only_whole_blocks_and_a_rerun_resumes(tmp_path, dhts, serve, request):
    source = CheckpointStore(tmp_path / "source")
    cid = source.add_adapter(write_synthetic_adapter(tmp_path / "big", megabytes=12), base_model="hivetune/tiny")
    server = serve("slow", dht=dhts[0], store=source, cid=cid)
    fetched = CheckpointStore(tmp_path / "fetched")
    peers = [str(m) for m in dhts[0].get_visible_maddrs()]
    command = [sys.executable, "-c", FETCHER, str(fetched.root), cid, request.node.name, *peers]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list(fetched.blocks)) < 4:
            assert proc.poll() is None, f"fetcher exited early: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "fetcher made no progress in 120 s"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    survivors = list(fetched.blocks)
    total = len(source.checkpoint_blocks(cid))
    assert 4 <= len(survivors) < total, "killed mid-way"
    assert all(fetched.blocks.check(block) for block in survivors), "no visible block may be partial"
    assert fetched.pinned() == []
    time.sleep(1.0)  # let the server finish requests the killed fetcher had in flight
    served_before = len(server.served)
    fetch(dhts[2], cid, fetched, request)
    assert fetched.verify(cid).ok
    missing = {str(c) for c in source.checkpoint_blocks(cid)} - {str(c) for c in survivors}
    rerun = [str(c) for c in server.served[served_before:]]
    assert set(rerun) == missing and len(rerun) == len(missing), "the rerun fetches only what is missing"


def client_call(dht, coro_fn):
    async def run():
        p2p = await replicate_p2p(dht)
        try:
            return await asyncio.wait_for(coro_fn(p2p), 30)
        finally:
            await p2p.shutdown()

    return asyncio.run(run())


def test_answers_found_not_found_and_several_requests_per_stream(dhts):
    from hivemind.p2p import P2P

    server_dht, client_dht = dhts[0], dhts[2]
    peer, maddrs = server_dht.peer_id, [str(m) for m in server_dht.get_visible_maddrs()]
    service = P2PService(server_dht, name="test").start()
    try:
        service.serve("t.upper.v1", lambda req: req.upper() if req != b"none" else None, request_limit=16)
        service.serve("t.len.v1", lambda req: str(len(req)).encode(), request_limit=16)

        async def calls(p2p):
            await connect(p2p, peer, maddrs)
            found = await ask(p2p, peer, "t.upper.v1", b"abc", limit=16)
            missing = await ask(p2p, peer, "t.upper.v1", b"none", limit=16)
            other = await ask(p2p, peer, "t.len.v1", b"abcd", limit=16)
            _, reader, writer = await p2p.call_binary_stream_handler(peer, "t.upper.v1")
            with closing(writer):  # one stream, three requests: each answered in turn, the last over the limit
                answers = []
                for request in (b"x", b"none", b"y"):
                    await P2P.send_raw_data(request, writer)
                    status = await reader.readexactly(1)
                    answers.append((status, await read_frame(reader, 16) if status == FOUND else None))
                await P2P.send_raw_data(b"z" * 17, writer)
                closed = await reader.read(1) == b""
            return found, missing, other, answers, closed

        found, missing, other, answers, closed = client_call(client_dht, calls)
        assert (found, missing, other) == (b"ABC", None, b"4")
        assert answers == [(FOUND, b"X"), (NOT_FOUND, None), (FOUND, b"Y")]
        assert closed, "a request over request_limit closes the stream unanswered"
    finally:
        service.stop()
    assert service._loop is None and not service._thread.is_alive()
