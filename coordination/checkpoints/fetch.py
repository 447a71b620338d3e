"""fetch_checkpoint: pull a checkpoint's missing blocks from the peers that announced it, in parallel, verified.

    dht = hivemind.DHT(initial_peers=[maddr], client_mode=True, start=True)
    fetch_checkpoint(dht, cid, CheckpointStore(), prefix=run_id)      # then store.get / resolve_adapter

1. Holders come from the DHT record f"{prefix}_ckpt_{cid}".
2. The manifest is fetched first (unless a verified copy is local), then every chunk that is not
   already present *and verified* locally: an interrupted fetch resumes where it stopped.
3. Up to `max_parallel` blocks are in flight, spread round-robin over holders.
4. Every block is hashed before it is written. A holder that serves bytes that do not match the
   CID is logged with its peer id and skipped for the rest of the fetch; the block is retried
   from another holder. Unreachable holders are skipped per block.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

from hivemind.dht import DHT
from hivemind.p2p import P2P

from coordination.checkpoints.addressing import parse_cid
from coordination.checkpoints.protocol import MAX_BLOCK_BYTES, CheckpointHolder, find_holders, handler_name
from coordination.checkpoints.store import CheckpointStore
from coordination.errors import CorruptBlockError, FetchError
from coordination.p2p_service import ask, connect, replicate_p2p

logger = logging.getLogger(__name__)


class BadPeerData(Exception):
    """A holder answered with bytes that do not hash to the requested CID."""


class _BlockPuller:
    """Requests blocks from holders; remembers holders that lied."""

    def __init__(
        self, p2p: P2P, store: CheckpointStore, holders: list[CheckpointHolder], *, prefix: str, timeout: float
    ):
        self.p2p, self.store, self.holders = p2p, store, holders
        self.protocol, self.request_timeout = handler_name(prefix), timeout
        self.bad_peers: set[str] = set()
        self._connected: set[str] = set()
        self._rotation = itertools.count()

    def _candidates(self) -> list[CheckpointHolder]:
        good = [h for h in self.holders if h.peer_id.to_base58() not in self.bad_peers]
        start = next(self._rotation) % max(len(good), 1)
        return good[start:] + good[:start]

    async def pull(self, cid: str) -> int:
        """Fetch, verify and store one block; return its size. FetchError when no good holder has it."""
        for holder in self._candidates():
            try:
                data = await asyncio.wait_for(self._request(holder, cid), self.request_timeout)
            except Exception as exc:  # network input: log, try the next holder
                logger.info(f"holder {holder.peer_id} failed to serve {cid}: {exc!r}")
                continue
            if data is None:
                continue
            try:
                await asyncio.to_thread(self.store.blocks.put_verified, parse_cid(cid), data, sync_dir=False)
            except CorruptBlockError:
                logger.warning(f"peer {holder.peer_id} served bytes that do not match block {cid}; skipping this peer")
                self.bad_peers.add(holder.peer_id.to_base58())
                continue
            return len(data)
        raise FetchError(
            f"no holder could serve a valid block {cid} (bad peers: {len(self.bad_peers)}/{len(self.holders)}): "
            "retry later or add --initial-peers of a peer that holds the checkpoint"
        )

    async def _request(self, holder: CheckpointHolder, cid: str) -> bytes | None:
        key = holder.peer_id.to_base58()
        if key not in self._connected:
            await connect(self.p2p, holder.peer_id, holder.maddrs)
            self._connected.add(key)
        return await ask(self.p2p, holder.peer_id, self.protocol, cid.encode("ascii"), limit=MAX_BLOCK_BYTES)


async def afetch_checkpoint(
    dht: DHT,
    cid: str,
    store: CheckpointStore,
    *,
    prefix: str,
    max_parallel: int = 4,
    timeout: float = 600.0,
    request_timeout: float = 30.0,
    pin: bool = True,
    on_block: Callable[[int], None] | None = None,
) -> str:
    """Async form of `fetch_checkpoint` (for callers already inside an event loop)."""
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    cid = str(parse_cid(cid))
    p2p = await replicate_p2p(dht)
    try:
        with store.writing():
            await asyncio.wait_for(
                _fetch(p2p, dht, cid, store, prefix, max_parallel, request_timeout, on_block), timeout
            )
            store.blocks.sync()
            if pin:
                store.pin(cid)
    except TimeoutError:
        raise FetchError(f"fetching {cid} took over {timeout:.0f}s: rerun to resume, or raise --timeout") from None
    finally:
        await p2p.shutdown()
    return cid


async def _fetch(p2p, dht, cid, store, prefix, max_parallel, request_timeout, on_block) -> None:
    holders = await asyncio.to_thread(find_holders, dht, prefix, cid)
    if not holders and not store.blocks.check(cid):
        raise FetchError(f"no peer announces checkpoint {cid} under prefix {prefix!r}: check the CID and the run")
    puller = _BlockPuller(p2p, store, holders, prefix=prefix, timeout=request_timeout)
    if not store.blocks.check(cid):
        await puller.pull(cid)
    missing = await asyncio.to_thread(store.missing_blocks, cid)
    limit = asyncio.Semaphore(max_parallel)

    async def pull_one(block: str) -> None:
        async with limit:
            size = await puller.pull(block)
        if on_block is not None:
            on_block(size)

    await asyncio.gather(*(pull_one(str(block)) for block in missing))


def fetch_checkpoint(dht: DHT, cid: str, store: CheckpointStore, *, prefix: str, **kwargs) -> str:
    """Fetch checkpoint `cid` into `store` from swarm peers (see module docstring); return the CID, pinned.

    Keyword arguments: max_parallel=4, timeout=600.0 (whole fetch), request_timeout=30.0 (per
    block), pin=True, on_block=None (called with each fetched block's size, e.g. a progress bar).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(afetch_checkpoint(dht, cid, store, prefix=prefix, **kwargs))
    raise ValueError("fetch_checkpoint was called inside a running event loop: `await afetch_checkpoint(...)` instead")
