"""Receipts in the DHT: each peer publishes its signed receipt for an epoch under the run's prefix.

DHT key f"{run_id}_receipts_{epoch}", subkey = the peer's Ethereum address, value = a dict with the
signed receipt (JSON form), the peer's libp2p id and its visible multiaddrs (so a validator can
dial it for the rollout records). A value that does not parse is logged and skipped: network input
never crashes a validator.

    publish_receipt(dht, run_id, epoch, signed, maddrs=visible_maddrs(dht))
    for published in fetch_receipts(dht, run_id, epoch): published.signed, published.peer_id
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from coordination.attest.receipts import SignedReceipt
from coordination.errors import AttestationError

logger = logging.getLogger(__name__)
RECEIPT_TTL = 24 * 3600.0


def receipts_key(run_id: str, epoch: int) -> str:
    return f"{run_id}_receipts_{int(epoch)}"


@dataclass(frozen=True)
class PublishedReceipt:
    signed: SignedReceipt
    peer_id: str  # base58 libp2p id of the peer that serves the records
    maddrs: tuple[str, ...]


def publish_receipt(dht, run_id: str, epoch: int, signed: SignedReceipt, *, maddrs=(), ttl: float = RECEIPT_TTL):
    """Store the signed receipt under (run, epoch); True when the DHT accepted it."""
    from hivemind.utils import get_dht_time

    value = {"signed": signed.to_json(), "peer_id": dht.peer_id.to_base58(), "maddrs": [str(m) for m in maddrs]}
    return dht.store(
        receipts_key(run_id, epoch), subkey=signed.receipt.peer, value=value, expiration_time=get_dht_time() + ttl
    )


def _parse(subkey, value) -> PublishedReceipt:
    if not isinstance(value, dict):
        raise AttestationError(f"receipt record of {subkey!r} is not a mapping")
    signed = SignedReceipt.from_json(value.get("signed") or {})
    if signed.receipt.peer.lower() != str(subkey).lower():
        raise AttestationError(f"receipt of {signed.receipt.peer} stored under subkey {subkey!r}")
    return PublishedReceipt(signed, str(value.get("peer_id", "")), tuple(str(m) for m in value.get("maddrs", [])))


def fetch_receipts(dht, run_id: str, epoch: int) -> list[PublishedReceipt]:
    """Every well-formed receipt published for (run, epoch), sorted by peer address."""
    found = dht.get(receipts_key(run_id, epoch), latest=True)
    if found is None or not isinstance(found.value, dict):
        return []
    out = []
    for subkey, record in sorted(found.value.items(), key=lambda kv: str(kv[0])):
        try:
            out.append(_parse(subkey, record.value))
        except AttestationError as exc:
            logger.warning(f"skipping a malformed receipt in {receipts_key(run_id, epoch)}: {exc}")
    return out
