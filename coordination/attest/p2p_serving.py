"""Rollout records over libp2p: a peer serves its records with Merkle proofs; validators fetch them.

Stream protocol f"{prefix}.attest.records.v1" (a hivemind binary stream handler), one request
per stream:
    request:  raw frame, JSON {"run": <run key hex>, "epoch": int, "peer": "0x..."}
    response: 1 status byte (FOUND / NOT_FOUND), then, if FOUND, a raw frame with JSON
              [{"record": {...}, "proof": ["0x..", ...]}, ...]
The validator checks every proof against the receipt's root itself, so a lying server gains
nothing; records that do not prove are a REJECTED verdict, never a crash.

    with RolloutServer(dht=dht, store=RolloutDirectory(path), prefix=run_id) as server: ...
    fetch = P2PRecordFetcher(dht, prefix=run_id, holders={peer_addr: (peer_id, maddrs)})
    fetch(signed_receipt)       # -> [(RolloutRecord, [bytes32]), ...] or RecordsUnavailable
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from contextlib import closing

from coordination.attest.receipts import SignedReceipt
from coordination.attest.records import RolloutRecord
from coordination.attest.rollout_store import RecordsUnavailable, RolloutDirectory

logger = logging.getLogger(__name__)
FOUND, NOT_FOUND = b"\x01", b"\x00"
MAX_RESPONSE_BYTES = 64 << 20


def handler_name(prefix: str) -> str:
    return f"{prefix}.attest.records.v1"


def encode_records(pairs) -> bytes:
    return json.dumps([{"record": r.to_json(), "proof": ["0x" + h.hex() for h in p]} for r, p in pairs]).encode()


def decode_records(data: bytes):
    try:
        items = json.loads(data)
        return [(RolloutRecord.from_json(i["record"]), [bytes.fromhex(h[2:]) for h in i["proof"]]) for i in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordsUnavailable(f"peer sent malformed rollout records ({exc})") from exc


class RolloutServer:
    """Serves a `RolloutDirectory` to validators; runs its own asyncio loop in a daemon thread."""

    def __init__(self, *, dht, store: RolloutDirectory, prefix: str, run_key_hex: str | None = None):
        from coordination.chain.signing import run_key

        self.dht, self.store, self.prefix = dht, store, prefix
        self.run_key_hex = (run_key_hex or run_key(prefix).hex()).lower()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="RolloutServer", daemon=True)
        self._p2p = None

    def start(self) -> RolloutServer:
        from coordination.checkpoints.protocol import replicate_p2p

        self._thread.start()
        self._p2p = self._run(replicate_p2p(self.dht))
        self._run(self._p2p.add_binary_stream_handler(handler_name(self.prefix), self._handle))
        return self

    def _run(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def parse_request(self, request: bytes) -> tuple[str, int, str]:
        """(run key hex, epoch, checksummed peer) of a well-formed request for THIS run; ValueError otherwise.

        Checked before anything touches the filesystem: the run must be this server's, the epoch a small
        non-negative int, the peer a valid address (so no request string ever becomes a path component)."""
        from eth_utils import to_checksum_address

        q = json.loads(request)
        if not isinstance(q, dict):
            raise ValueError("request is not a JSON object")
        run, epoch, peer = q.get("run"), q.get("epoch"), q.get("peer")
        if not isinstance(run, str) or run.lower() != self.run_key_hex:
            raise ValueError(f"run {str(run)[:80]!r} is not this server's run")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch < 2**40:
            raise ValueError(f"epoch {epoch!r} is not an epoch number")
        if not isinstance(peer, str) or len(peer) != 42:
            raise ValueError(f"peer {str(peer)[:80]!r} is not an address")
        return self.run_key_hex, epoch, to_checksum_address(peer)

    def _answer(self, request: bytes) -> bytes | None:
        try:
            run, epoch, peer = self.parse_request(request)
            from coordination.attest.rollout_store import records_with_proofs

            return encode_records(records_with_proofs(self.store.records(run, epoch, peer)))
        except Exception as exc:  # unknown peer/epoch, malformed request: answer NOT_FOUND
            logger.info(f"not serving rollout records for {request[:200]!r}: {exc}")
            return None

    async def _handle(self, stream_info, reader, writer) -> None:
        from hivemind.p2p import P2P

        from coordination.checkpoints.protocol import read_frame

        with closing(writer):
            try:
                request = await read_frame(reader, limit=4096)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                return
            data = await asyncio.to_thread(self._answer, request)
            writer.write(FOUND if data is not None else NOT_FOUND)
            if data is not None:
                await P2P.send_raw_data(data, writer)
            await writer.drain()

    def stop(self) -> None:
        if self._p2p is not None:
            try:
                self._run(self._p2p.remove_binary_stream_handler(handler_name(self.prefix)), timeout=10)
                self._run(self._p2p.shutdown(), timeout=10)
            except Exception:
                logger.debug("stopping the rollout server failed", exc_info=True)
            self._p2p = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> RolloutServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


async def afetch_records(dht, *, prefix: str, peer_id: str, maddrs, request: dict, timeout: float):
    from hivemind.p2p import P2P, PeerID
    from hivemind.utils.multiaddr import Multiaddr

    from coordination.checkpoints.protocol import read_frame, replicate_p2p

    p2p = await replicate_p2p(dht)
    try:
        target = PeerID.from_base58(peer_id)
        if maddrs and target not in {i.peer_id for i in await p2p.list_peers()}:
            await p2p._client.connect(target, [Multiaddr(m) for m in maddrs])
        _, reader, writer = await p2p.call_binary_stream_handler(target, handler_name(prefix))
        with closing(writer):
            await P2P.send_raw_data(json.dumps(request).encode(), writer)
            status = await asyncio.wait_for(reader.readexactly(1), timeout)
            return await asyncio.wait_for(read_frame(reader, MAX_RESPONSE_BYTES), timeout) if status == FOUND else None
    finally:
        await p2p.shutdown()


class P2PRecordFetcher:
    """A validator's record fetcher over libp2p; `holders` maps a receipt's key -> holders to try in order.

    A holder whose records do not rebuild the receipt's root is skipped for the next one (a copier
    cannot make the original's records unavailable); when none serves good records, the last
    answer is returned for the audit to classify, or RecordsUnavailable when nobody answered.
    """

    def __init__(self, dht, *, prefix: str, holders: dict[bytes, tuple], timeout: float = 30.0):
        self.dht, self.prefix, self.holders, self.timeout = dht, prefix, holders, timeout

    def _ask(self, holder, request: dict):
        peer_id, maddrs = holder
        coro = afetch_records(
            self.dht, prefix=self.prefix, peer_id=peer_id, maddrs=maddrs, request=request, timeout=self.timeout
        )
        return asyncio.run(asyncio.wait_for(coro, self.timeout))

    def __call__(self, signed: SignedReceipt):
        from coordination.attest.records import rollouts_tree

        r = signed.receipt
        request, last, errors = {"run": r.run_id.hex(), "epoch": r.epoch, "peer": r.peer}, None, []
        for holder in self.holders.get(signed.key, ()):
            try:
                data = self._ask(holder, request)
            except Exception as exc:  # unreachable peer, timeout, daemon error
                errors.append(f"{holder[0]}: {exc!r}")
                continue
            if data is None:
                errors.append(f"{holder[0]}: not found")
                continue
            try:
                served = decode_records(data)
            except RecordsUnavailable as exc:  # a malformed answer: try the next holder
                errors.append(f"{holder[0]}: {exc}")
                continue
            if served and rollouts_tree([rec for rec, _ in served]).root == r.rollouts_root:
                return served
            last = served
        if last is not None:
            return last
        raise RecordsUnavailable(f"no holder served the records of {r.peer} for epoch {r.epoch}: {errors or 'none'}")

    @classmethod
    def from_published(cls, dht, *, prefix: str, published, timeout: float = 30.0) -> P2PRecordFetcher:
        """A fetcher for the holders named in `fetch_receipts(...)` results."""
        return cls(dht, prefix=prefix, holders={p.signed.key: p.holders for p in published}, timeout=timeout)
