"""Receipts in the DHT: each peer publishes its signed receipt for an epoch under the run's prefix.

DHT key f"{run_id}_receipts_{epoch}", subkey = the peer's Ethereum address followed by hivemind's
`[owner:<RSA public key>]` marker, value = a dict with the signed receipt (JSON form), the peer's
libp2p id and its visible multiaddrs (so a validator can dial it for the rollout records). Entries are
owner-protected (`RSASignatureValidator`, as the epoch board): nobody but the node that wrote an entry
can overwrite or delete it, and `fetch_receipts` ignores unprotected entries. A value that does not
parse is logged and skipped: network input never crashes a validator.

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


RecordsHolder = tuple[str, tuple[str, ...]]  # (base58 libp2p id, multiaddrs) of a peer that serves rollout records


@dataclass(frozen=True)
class PublishedReceipt:
    signed: SignedReceipt
    holders: tuple[RecordsHolder, ...]  # every publisher of this exact receipt, the peer itself first if it published


def receipt_record_validator():
    """A hivemind `RSASignatureValidator`: pass it in `DHT(record_validators=[...])` on every node, then publish
    with `owner=validator.local_public_key` so that nobody but this node can overwrite its receipt entry."""
    from hivemind.dht.crypto import RSASignatureValidator

    return RSASignatureValidator()


def protect(dht) -> bytes:
    """Install the owner-signature validator on `dht` (idempotent) and return this node's owner key."""
    validator = receipt_record_validator()
    dht.add_validators([validator])
    return validator.local_public_key


def publish_receipt(
    dht,
    run_id: str,
    epoch: int,
    signed: SignedReceipt,
    *,
    maddrs=(),
    ttl: float = RECEIPT_TTL,
    owner: bytes | None = None,
):
    """Store the signed receipt under (run, epoch); True when the DHT accepted it.

    The subkey is the peer address followed by the `[owner:...]` marker of `owner` (default: `protect(dht)`).
    """
    from hivemind.utils import get_dht_time

    owner = owner or protect(dht)

    value = {"signed": signed.to_json(), "peer_id": dht.peer_id.to_base58(), "maddrs": [str(m) for m in maddrs]}
    subkey = signed.receipt.peer.encode() + owner
    return dht.store(receipts_key(run_id, epoch), subkey=subkey, value=value, expiration_time=get_dht_time() + ttl)


def _subkey_address(subkey) -> str:
    text = subkey.decode("latin-1") if isinstance(subkey, bytes) else str(subkey)
    return text[:42].lower()


def _parse(subkey, value) -> tuple[SignedReceipt, RecordsHolder]:
    if not isinstance(value, dict):
        raise AttestationError(f"receipt record of {subkey!r} is not a mapping")
    signed = SignedReceipt.from_json(value.get("signed") or {})
    if signed.receipt.peer.lower() != _subkey_address(subkey):
        raise AttestationError(f"receipt of {signed.receipt.peer} stored under subkey {subkey!r}")
    return signed, (str(value.get("peer_id", "")), tuple(str(m) for m in value.get("maddrs", [])))


def fetch_receipts(dht, run_id: str, epoch: int) -> list[PublishedReceipt]:
    """Each distinct well-formed receipt published for (run, epoch), with all its holders, sorted by peer.

    Signatures are not checked here (the audit does); a copy of a receipt published by someone else
    only adds a holder to try, it cannot replace the original.
    """
    found = dht.get(receipts_key(run_id, epoch), latest=True)
    if found is None or not isinstance(found.value, dict):
        return []
    receipts, holders = {}, {}
    for subkey, record in sorted(found.value.items(), key=lambda kv: str(kv[0])):
        if not isinstance(subkey, bytes) or b"[owner:" not in subkey:
            logger.warning(f"skipping unprotected receipt entry {str(subkey)[:60]!r} of {receipts_key(run_id, epoch)}")
            continue
        try:
            signed, holder = _parse(subkey, record.value)
        except AttestationError as exc:
            logger.warning(f"skipping a malformed receipt in {receipts_key(run_id, epoch)}: {exc}")
            continue
        receipts.setdefault(signed.key, signed)
        holders.setdefault(signed.key, []).append(holder)
    out = [PublishedReceipt(receipts[k], tuple(dict.fromkeys(holders[k]))) for k in receipts]
    return sorted(out, key=lambda p: (p.signed.receipt.peer, p.signed.key))
