"""Content addresses: CIDv1 with sha2-256 multihashes, computed with the `multiformats` library.

A raw block (a file chunk) gets a CIDv1 with codec `raw` (`bafkrei...`); a manifest node gets
codec `dag-cbor` (`bafyrei...`). Every CID string we print or store is base32, as IPFS does.

    >>> str(block_cid(b"hello world", RAW))
    'bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e'
"""

from __future__ import annotations

from multiformats import CID, multihash

from coordination.errors import CheckpointError

RAW = "raw"
DAG_CBOR = "dag-cbor"
HASH_FUNCTION = "sha2-256"


def block_cid(data: bytes, codec: str) -> CID:
    """The CIDv1 (base32, sha2-256) of a block with the given codec."""
    return CID("base32", 1, codec, multihash.digest(data, HASH_FUNCTION))


def parse_cid(text: str | CID) -> CID:
    """Parse a CID string (any multibase) into a base32 CID; raise CheckpointError on garbage."""
    if isinstance(text, CID):
        return text.set(base="base32")
    try:
        return CID.decode(text.strip()).set(base="base32")
    except (ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{text!r} is not a CID: pass a checkpoint id like bafyrei... (see `hivetune checkpoint ls`)"
        ) from exc


def block_matches(cid: CID, data: bytes) -> bool:
    """True when `data` hashes to the multihash inside `cid` (any hash function multiformats knows)."""
    try:
        return cid.hashfun.digest(data) == cid.digest
    except (KeyError, ValueError, NotImplementedError):
        return False
