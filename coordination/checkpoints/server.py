"""CheckpointServer: serve the blocks of announced checkpoints to swarm peers, and keep the announcements fresh.

    dht = hivemind.DHT(host_maddrs=["/ip4/0.0.0.0/tcp/0"], start=True)
    with CheckpointServer(dht=dht, store=CheckpointStore(), prefix=run_id) as server:
        server.announce(cid)           # peers can now `fetch_checkpoint(dht, cid, ...)`
        ...

The server runs its own asyncio loop in a daemon thread (hivemind's DHT lives in another process;
we talk to its libp2p daemon through our own P2P replica). Every block is re-verified before it
is sent; a block that fails is quarantined by the store and answered as NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import closing

from hivemind.dht import DHT
from hivemind.p2p import P2P

from coordination.checkpoints.addressing import parse_cid
from coordination.checkpoints.protocol import (
    DEFAULT_ANNOUNCE_TTL,
    FOUND,
    NOT_FOUND,
    announce,
    handler_name,
    read_frame,
    replicate_p2p,
)
from coordination.checkpoints.store import CheckpointStore
from coordination.errors import CheckpointError

logger = logging.getLogger(__name__)


class CheckpointServer:
    """Serves blocks by CID over `{prefix}.ckpt.block.v1` and re-announces held checkpoints every ttl/3 seconds.

    :param announce_ttl: lifetime of a DHT announcement; 60-300 s is a good range (shorter: dead
      holders disappear faster; longer: fewer DHT stores).
    """

    def __init__(self, *, dht: DHT, store: CheckpointStore, prefix: str, announce_ttl: float = DEFAULT_ANNOUNCE_TTL):
        self.dht, self.store, self.prefix, self.announce_ttl = dht, store, prefix, announce_ttl
        self._served: set[str] = set()
        self._announced: list[str] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._p2p: P2P | None = None
        self.maddrs: list[str] = []

    def start(self) -> CheckpointServer:
        self._loop = asyncio.new_event_loop()
        self._spawn(self._loop.run_forever, "loop")
        self._run(self._start_async())
        self.maddrs = [str(m) for m in self.dht.get_visible_maddrs()]
        self._spawn(self._reannounce_forever, "announce")
        return self

    def _spawn(self, target, role: str) -> None:
        thread = threading.Thread(target=target, name=f"CheckpointServer-{role}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_async(self) -> None:
        self._p2p = await replicate_p2p(self.dht)
        await self._p2p.add_binary_stream_handler(handler_name(self.prefix), self._handle_stream)

    def announce(self, cid: str) -> None:
        """Serve checkpoint `cid` (manifest + chunks, which must be in the store) and announce it in the DHT."""
        blocks = self.store.checkpoint_blocks(cid)
        missing = self.store.missing_blocks(cid)
        if missing:
            raise CheckpointError(f"cannot serve {cid}: {len(missing)} chunks are missing locally; fetch it first")
        with self._lock:
            self._served.update(str(b) for b in blocks)
            if str(blocks[0]) not in self._announced:
                self._announced.append(str(blocks[0]))
        self._store_announcement(str(blocks[0]))

    def _store_announcement(self, cid: str) -> None:
        if not announce(self.dht, self.prefix, cid, self.maddrs, ttl=self.announce_ttl):
            logger.warning(f"DHT store of the announcement of {cid} failed; retrying in {self.announce_ttl / 3:.0f}s")

    def _reannounce_forever(self) -> None:
        while not self._stopped.wait(self.announce_ttl / 3):
            with self._lock:
                announced = list(self._announced)
            for cid in announced:
                try:
                    self._store_announcement(cid)
                except Exception:  # the DHT may be shutting down; never kill the thread
                    logger.debug(f"re-announcing {cid} failed", exc_info=True)

    def read_block(self, cid: str) -> bytes | None:
        """Verified bytes of a block this server serves, or None (unknown, missing or corrupt)."""
        if cid not in self._served:
            return None
        try:
            return self.store.blocks.get(cid)
        except CheckpointError as exc:
            logger.warning(f"not serving block {cid}: {exc}")
            return None

    async def _handle_stream(self, stream_info, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with closing(writer):
            while True:
                try:
                    request = await read_frame(reader, limit=256)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    return
                try:
                    cid = str(parse_cid(request.decode("ascii")))
                except (CheckpointError, UnicodeDecodeError):
                    cid = ""
                data = await asyncio.to_thread(self.read_block, cid) if cid else None
                if data is None:
                    writer.write(NOT_FOUND)
                    await writer.drain()
                else:
                    writer.write(FOUND)
                    await P2P.send_raw_data(data, writer)

    def stop(self) -> None:
        """Stop serving and re-announcing (announcements then expire after at most `announce_ttl`)."""
        self._stopped.set()
        if self._loop is None:
            return
        try:
            self._run(self._stop_async(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            for thread in self._threads:
                thread.join(timeout=10)
            self._loop.close()
            self._loop = None

    async def _stop_async(self) -> None:
        if self._p2p is not None:
            try:
                await self._p2p.remove_binary_stream_handler(handler_name(self.prefix))
            except Exception:
                logger.debug("removing the stream handler failed", exc_info=True)
            await self._p2p.shutdown()

    def __enter__(self) -> CheckpointServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
