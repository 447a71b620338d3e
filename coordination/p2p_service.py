"""Request/response over hivemind's libp2p daemon: what checkpoint blocks and rollout records are served by.

Wire format, per protocol name (a hivemind binary stream handler), repeated per request on one stream:
    request:  P2P raw frame (8-byte big-endian length + the request bytes)
    response: 1 status byte (FOUND / NOT_FOUND), then, if FOUND, a raw frame with the response bytes.

    service = P2PService(dht, name="CheckpointServer").start()     # its own event loop in a daemon thread
    service.serve("run.ckpt.block.v1", read_block, request_limit=256)  # read_block(bytes) -> bytes | None
    ...
    p2p = await replicate_p2p(dht)                                 # client side, inside any event loop
    await connect(p2p, peer_id, maddrs)
    data = await ask(p2p, peer_id, "run.ckpt.block.v1", b"bafy...", limit=4 << 20)   # None: NOT_FOUND
    service.stop()

The DHT lives in another process; both sides talk to its libp2p daemon through their own P2P replica
(`replicate_p2p`). Handlers run in a worker thread, so they may block on disk.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import closing
from functools import partial

from hivemind.dht import DHT, DHTNode
from hivemind.p2p import P2P, PeerID
from hivemind.utils.multiaddr import Multiaddr

logger = logging.getLogger(__name__)

FOUND, NOT_FOUND = b"\x01", b"\x00"


async def _daemon_listen_maddr(_dht: DHT, node: DHTNode) -> Multiaddr:
    return node.p2p.daemon_listen_maddr


async def replicate_p2p(dht: DHT) -> P2P:
    """A fresh P2P client of the DHT's daemon bound to the *current* event loop (DHT caches only one)."""
    maddr = await asyncio.to_thread(dht.run_coroutine, _daemon_listen_maddr)
    return await P2P.replicate(maddr)


async def read_frame(reader: asyncio.StreamReader, limit: int) -> bytes:
    """One length-prefixed frame, refusing frames over `limit` bytes before reading them."""
    header = await reader.readexactly(P2P.HEADER_LEN)
    length = int.from_bytes(header, P2P.BYTEORDER)
    if length > limit:
        raise ValueError(f"peer sent a {length}-byte frame, over the {limit}-byte limit")
    return await reader.readexactly(length)


async def connect(p2p: P2P, peer_id: PeerID, maddrs) -> None:
    """Dial `peer_id` at `maddrs` (what it announced) unless the daemon already knows it."""
    if maddrs and peer_id not in {info.peer_id for info in await p2p.list_peers()}:
        await p2p._client.connect(peer_id, [Multiaddr(m) for m in maddrs])


async def ask(p2p: P2P, peer_id: PeerID, protocol: str, request: bytes, *, limit: int) -> bytes | None:
    """One request on a fresh stream to `peer_id`: the response (FOUND), or None (NOT_FOUND)."""
    _, reader, writer = await p2p.call_binary_stream_handler(peer_id, protocol)
    with closing(writer):
        await P2P.send_raw_data(request, writer)
        status = await reader.readexactly(1)
        return await read_frame(reader, limit) if status == FOUND else None


async def _answer_stream(answer: Callable[[bytes], bytes | None], request_limit: int, _info, reader, writer) -> None:
    with closing(writer):
        while True:
            try:
                request = await read_frame(reader, request_limit)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                return
            response = await asyncio.to_thread(answer, request)
            if response is None:
                writer.write(NOT_FOUND)
                await writer.drain()
            else:
                writer.write(FOUND)
                await P2P.send_raw_data(response, writer)


class P2PService:
    """Answers requests on named protocols (module docstring) from one event loop in a daemon thread.

    `name` names the thread (e.g. "CheckpointServer").
    """

    def __init__(self, dht: DHT, *, name: str):
        self.dht, self.name = dht, name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._p2p: P2P | None = None
        self._protocols: list[str] = []

    def start(self) -> P2PService:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{self.name}-loop", daemon=True)
        self._thread.start()
        self._p2p = self._run(replicate_p2p(self.dht))
        return self

    def _run(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def serve(self, protocol: str, answer: Callable[[bytes], bytes | None], *, request_limit: int) -> None:
        """Answer each request (at most `request_limit` bytes) on `protocol` with `answer(request)`: bytes, or None
        for NOT_FOUND. `answer` runs in a worker thread; an exception it raises closes that stream."""
        self._run(self._p2p.add_binary_stream_handler(protocol, partial(_answer_stream, answer, request_limit)))
        self._protocols.append(protocol)

    def stop(self) -> None:
        """Remove the handlers, close the P2P replica, stop the loop and its thread."""
        if self._loop is None:
            return
        try:
            self._run(self._close(), timeout=10)
        except Exception:
            logger.debug(f"{self.name}: closing the P2P replica failed", exc_info=True)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._loop = None

    async def _close(self) -> None:
        if self._p2p is None:
            return
        for protocol in self._protocols:
            try:
                await self._p2p.remove_binary_stream_handler(protocol)
            except Exception:
                logger.debug(f"{self.name}: removing the handler of {protocol} failed", exc_info=True)
        await self._p2p.shutdown()
        self._p2p = None
