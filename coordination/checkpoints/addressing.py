"""Content addresses: CIDv1 with sha2-256 multihashes, computed with the `multiformats` library.

A raw block (a file chunk) gets a CIDv1 with codec `raw` (`bafkrei...`); a manifest node gets
codec `dag-cbor` (`bafyrei...`). Every CID string we print or store is base32, as IPFS does.
Only sha2-256 multihashes are accepted: a CID with md5, sha1, identity (no hash at all) or any
other function is refused by `parse_cid`, and `block_matches` never vouches for one.

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
        return require_sha256(text.set(base="base32"))
    try:
        cid = CID.decode(text.strip()).set(base="base32")
    except (ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{text!r} is not a CID: pass a checkpoint id like bafyrei... (see `hivetune checkpoint ls`)"
        ) from exc
    return require_sha256(cid)


def require_sha256(cid: CID) -> CID:
    """`cid` itself if its multihash is a 32-byte sha2-256; CheckpointError otherwise."""
    if cid.hashfun.name != HASH_FUNCTION or len(cid.raw_digest) != 32:
        raise CheckpointError(
            f"CID {cid} uses multihash {cid.hashfun.name}: hivetune accepts only sha2-256 content addresses"
        )
    return cid


def block_matches(cid: CID, data: bytes) -> bool:
    """True when `data` hashes to the sha2-256 multihash inside `cid` (any other hash function: False)."""
    if cid.hashfun.name != HASH_FUNCTION:
        return False
    try:
        return cid.hashfun.digest(data) == cid.digest
    except (KeyError, ValueError, NotImplementedError):
        return False
