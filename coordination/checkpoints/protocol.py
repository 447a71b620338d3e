"""The checkpoint wire protocol over hivemind's libp2p daemon, and the DHT records that announce holders.

DHT: key f"{prefix}_ckpt_{cid}", subkey = holder's peer id (base58), value = the holder's visible
multiaddrs (so a fetcher that has never met the holder can still dial it), with an expiration.

Stream protocol f"{prefix}.ckpt.block.v1", a `coordination.p2p_service` request/response protocol
(repeated per request on one stream):
    request:  P2P raw frame (8-byte big-endian length + the CID as ASCII base32 text)
    response: 1 status byte (FOUND / NOT_FOUND), then, if FOUND, a raw frame with the block bytes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hivemind.dht import DHT
from hivemind.p2p import PeerID
from hivemind.utils import get_dht_time

logger = logging.getLogger(__name__)

MAX_CID_BYTES = 256  # a request: one CID as text
MAX_BLOCK_BYTES = 4 << 20  # a chunk is 1 MiB; a manifest of ~100k chunks still fits
DEFAULT_ANNOUNCE_TTL = 300.0


def announce_key(prefix: str, cid: str) -> str:
    return f"{prefix}_ckpt_{cid}"


def handler_name(prefix: str) -> str:
    return f"{prefix}.ckpt.block.v1"


@dataclass(frozen=True)
class CheckpointHolder:
    """A peer that announced a checkpoint: its peer id and the multiaddrs it said it listens on."""

    peer_id: PeerID
    maddrs: tuple[str, ...]


def announce(dht: DHT, prefix: str, cid: str, maddrs: list[str], ttl: float = DEFAULT_ANNOUNCE_TTL) -> bool:
    """Record in the DHT that this peer holds checkpoint `cid` for the next `ttl` seconds."""
    return dht.store(
        announce_key(prefix, cid),
        subkey=dht.peer_id.to_base58(),
        value=list(maddrs),
        expiration_time=get_dht_time() + ttl,
    )


def find_holders(dht: DHT, prefix: str, cid: str) -> list[CheckpointHolder]:
    """Peers (other than us) whose announcement of `cid` has not expired, most recently refreshed first."""
    found = dht.get(announce_key(prefix, cid), latest=True)
    if found is None or not isinstance(found.value, dict):
        return []
    me = dht.peer_id.to_base58()
    records = sorted(found.value.items(), key=lambda item: -item[1].expiration_time)
    holders = []
    for subkey, record in records:
        if subkey == me or not isinstance(subkey, str) or not isinstance(record.value, list):
            continue
        try:
            holders.append(CheckpointHolder(PeerID.from_base58(subkey), tuple(str(m) for m in record.value)))
        except ValueError:
            logger.warning(f"ignoring a malformed holder record {subkey!r} for checkpoint {cid}")
    return holders
