"""Deterministic prompt assignment: which task samples a peer works on in an epoch.

The indices derive from `H(run id, epoch, peer address)`, so no peer can cherry-pick easy
samples and any validator can recompute a peer's assignment from public data alone.

    assigned_indices("bafy...", epoch=3, peer="0xAbc...", count=32)  # -> [int, ...]
"""

from __future__ import annotations

import hashlib

from eth_utils import to_checksum_address

INDEX_SPACE = 2**48  # task sample indices live in [0, INDEX_SPACE); generators accept any int


def assignment_seed(run_id: str, epoch: int, peer: str) -> bytes:
    """sha256 over the canonical (run id, epoch, checksummed peer address) triple."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    text = f"hivetune/assign/v1|{run_id}|{epoch}|{to_checksum_address(peer)}"
    return hashlib.sha256(text.encode()).digest()


def assigned_indices(run_id: str, epoch: int, peer: str, count: int) -> list[int]:
    """`count` distinct sample indices for `peer` in `epoch`, expanded from the assignment seed by counter hashing."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    seed, out, seen, counter = assignment_seed(run_id, epoch, peer), [], set(), 0
    while len(out) < count:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        index = int.from_bytes(block[:8], "big") % INDEX_SPACE
        counter += 1
        if index not in seen:
            seen.add(index)
            out.append(index)
    return out
