"""CheckpointServer: serve the blocks of announced checkpoints to swarm peers, and keep the announcements fresh.

    dht = hivemind.DHT(host_maddrs=["/ip4/0.0.0.0/tcp/0"], start=True)
    with CheckpointServer(dht=dht, store=CheckpointStore(), prefix=run_id) as server:
        server.announce(cid)           # peers can now `fetch_checkpoint(dht, cid, ...)`
        ...

Blocks are served through a `coordination.p2p_service.P2PService` (its own asyncio loop in a daemon
thread, talking to the DHT's libp2p daemon through its own P2P replica). Every block is re-verified
before it is sent; a block that fails is quarantined by the store and answered as NOT_FOUND.
"""

from __future__ import annotations

import logging
import threading

from hivemind.dht import DHT

from coordination.checkpoints.addressing import parse_cid
from coordination.checkpoints.protocol import DEFAULT_ANNOUNCE_TTL, MAX_CID_BYTES, announce, handler_name
from coordination.checkpoints.store import CheckpointStore
from coordination.errors import CheckpointError
from coordination.p2p_service import P2PService

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
        self._service: P2PService | None = None
        self._announcer: threading.Thread | None = None
        self.maddrs: list[str] = []

    def start(self) -> CheckpointServer:
        self._service = P2PService(self.dht, name="CheckpointServer").start()
        self._service.serve(handler_name(self.prefix), self._answer, request_limit=MAX_CID_BYTES)
        self.maddrs = [str(m) for m in self.dht.get_visible_maddrs()]
        self._announcer = threading.Thread(
            target=self._reannounce_forever, name="CheckpointServer-announce", daemon=True
        )
        self._announcer.start()
        return self

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

    def _answer(self, request: bytes) -> bytes | None:
        """A request (a CID as ASCII text) -> the block's verified bytes, or None (NOT_FOUND)."""
        try:
            cid = str(parse_cid(request.decode("ascii")))
        except (CheckpointError, UnicodeDecodeError):
            return None
        return self.read_block(cid)

    def stop(self) -> None:
        """Stop serving and re-announcing (announcements then expire after at most `announce_ttl`)."""
        self._stopped.set()
        if self._service is not None:
            self._service.stop()
            self._service = None
        if self._announcer is not None:
            self._announcer.join(timeout=10)
            self._announcer = None

    def __enter__(self) -> CheckpointServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
