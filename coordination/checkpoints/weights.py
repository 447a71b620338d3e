"""The content hash of an adapter's *weights*, independent of the manifest's bytes.

Two manifests that differ only in metadata (step, parent, run id, a comment in adapter_config) have
different CIDs but the same weights; the CheckpointRegistry deduplicates nominations by this hash, so
byte-different manifests of one set of weights give one nomination and one eval seed.

    weights_hash(adapter_dir)          # 32 bytes: sha2-256 over the canonical tensor encoding
    weights_hash_of(store, cid)        # the same, for a stored checkpoint

Canonical encoding (safetensors, parsed here without importing torch): for each tensor in name order,
`name \\0 dtype \\0 shape as comma-separated ints \\0 little-endian raw bytes`, each part
length-prefixed with 8 bytes (big-endian). The safetensors header's key order, padding and
`__metadata__` do not enter the hash.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from coordination.checkpoints.manifest import ADAPTER_WEIGHTS
from coordination.errors import CheckpointError

MAX_HEADER_BYTES = 100 << 20


def _part(data: bytes) -> bytes:
    return struct.pack(">Q", len(data)) + data


def safetensors_weights_hash(data: bytes, name: str = "adapter_model.safetensors") -> bytes:
    """sha2-256 over the canonical tensors of a safetensors file; CheckpointError when it is malformed."""
    if len(data) < 8:
        raise CheckpointError(f"{name} is too short to be a safetensors file")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(MAX_HEADER_BYTES, len(data) - 8):
        raise CheckpointError(f"{name}: safetensors header of {header_len} bytes does not fit the file")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except ValueError as exc:
        raise CheckpointError(f"{name}: safetensors header is not JSON ({exc})") from exc
    body = memoryview(data)[8 + header_len :]
    digest = hashlib.sha256()
    for tensor in sorted(k for k in header if k != "__metadata__"):
        try:
            info = header[tensor]
            start, end = (int(x) for x in info["data_offsets"])
            dtype, shape = str(info["dtype"]), [int(x) for x in info["shape"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{name}: tensor {tensor!r} has a malformed header entry ({exc})") from exc
        if not 0 <= start <= end <= len(body):
            raise CheckpointError(f"{name}: tensor {tensor!r} points outside the file")
        for piece in (tensor.encode(), dtype.encode(), ",".join(map(str, shape)).encode(), bytes(body[start:end])):
            digest.update(_part(piece))
    return digest.digest()


def weights_hash(adapter_dir: Path | str) -> bytes:
    """The weights hash of a PEFT adapter directory (safetensors; a .bin file is hashed as raw bytes)."""
    adapter_dir = Path(adapter_dir)
    safetensors = adapter_dir / ADAPTER_WEIGHTS[0]
    if safetensors.is_file():
        return safetensors_weights_hash(safetensors.read_bytes(), str(safetensors))
    legacy = adapter_dir / ADAPTER_WEIGHTS[1]
    if legacy.is_file():
        return hashlib.sha256(b"bin\0" + legacy.read_bytes()).digest()
    raise CheckpointError(f"{adapter_dir} holds no {ADAPTER_WEIGHTS[0]}: not a PEFT adapter directory")


def weights_hash_of(store, cid) -> bytes:
    """The weights hash of stored checkpoint `cid` (materialized and verified by the store)."""
    return weights_hash(store.checkout(cid))
