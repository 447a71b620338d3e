"""Rollout records over libp2p: a peer serves its records with Merkle proofs; validators fetch them.

Stream protocol f"{prefix}.attest.records.v1", a `coordination.p2p_service` request/response
protocol (the fetcher sends one request per stream):
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

from coordination.attest.receipts import SignedReceipt
from coordination.attest.records import RolloutRecord
from coordination.attest.rollout_store import RecordsUnavailable, RolloutDirectory

logger = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 4096
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
    """Serves a `RolloutDirectory` to validators through a `P2PService` (its own asyncio loop in a daemon thread)."""

    def __init__(self, *, dht, store: RolloutDirectory, prefix: str, run_key_hex: str | None = None):
        from coordination.chain.eip712 import run_key

        self.dht, self.store, self.prefix = dht, store, prefix
        self.run_key_hex = (run_key_hex or run_key(prefix).hex()).lower()
        self._service = None

    def start(self) -> RolloutServer:
        from coordination.p2p_service import P2PService

        self._service = P2PService(self.dht, name="RolloutServer").start()
        self._service.serve(handler_name(self.prefix), self._answer, request_limit=MAX_REQUEST_BYTES)
        return self

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

    def stop(self) -> None:
        if self._service is not None:
            self._service.stop()
            self._service = None

    def __enter__(self) -> RolloutServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


async def afetch_records(dht, *, prefix: str, peer_id: str, maddrs, request: dict, timeout: float):
    """The records one holder serves for `request` (encoded; None: NOT_FOUND), within `timeout` seconds."""
    from hivemind.p2p import PeerID

    from coordination.p2p_service import ask, connect, replicate_p2p

    p2p = await replicate_p2p(dht)
    try:
        target = PeerID.from_base58(peer_id)
        await connect(p2p, target, maddrs)
        payload = json.dumps(request).encode()
        return await asyncio.wait_for(
            ask(p2p, target, handler_name(prefix), payload, limit=MAX_RESPONSE_BYTES), timeout
        )
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
