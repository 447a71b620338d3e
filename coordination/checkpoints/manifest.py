"""The checkpoint manifest: one dag-cbor node that links every chunk of a PEFT adapter directory.

    {
      "type": "hivetune/checkpoint", "version": 1,
      "base_model": "Qwen/Qwen2.5-0.5B-Instruct", "base_revision": "7ae557..." | null,
      "run_id": "bafyrei..." | null, "step": 1200 | null,
      "parent": CID link to the previous manifest | null,
      "adapter_config": {... adapter_config.json ...},
      "chunk_size": 1048576,
      "files": [{"name": "adapter_config.json", "size": 812, "sha256": "<hex>", "chunks": [CID, ...]}, ...],
      "eval_digest": "<hex>" | null
    }

Files are sorted by their relative POSIX path; dag-cbor sorts map keys canonically; there are no
timestamps or absolute paths, so the same directory and metadata give the same CID on any machine.

A manifest read from anyone is checked before a single byte is written: every link is a raw
sha2-256 block, no chunk is linked twice, each file links exactly ceil(size / chunk_size) chunks,
and the link count and total size stay under `MAX_LINKS` / `MAX_TOTAL_BYTES` (so one 1 MiB chunk
linked 256 times cannot make `checkout` write 256 MiB).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import dag_cbor
from multiformats import CID

from coordination.checkpoints.addressing import RAW, require_sha256
from coordination.errors import CheckpointError

MANIFEST_TYPE = "hivetune/checkpoint"
MANIFEST_VERSION = 1
CHUNK_SIZE = 1 << 20
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
MAX_LINKS = 8192  # 8 GiB of 1 MiB chunks: far above any LoRA adapter
MAX_TOTAL_BYTES = 8 << 30


@dataclass(frozen=True)
class FileEntry:
    """One file of a checkpoint: relative POSIX name, size in bytes, whole-file sha256 hex, chunk CIDs."""

    name: str
    size: int
    sha256: str
    chunks: tuple[CID, ...]

    def to_node(self) -> dict:
        return {"name": self.name, "size": self.size, "sha256": self.sha256, "chunks": list(self.chunks)}


def adapter_files(adapter_dir: Path) -> list[Path]:
    """The regular files of an adapter dir, sorted by relative path; CheckpointError if it is not PEFT's."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise CheckpointError(f"{adapter_dir} is not a directory: pass a PEFT adapter dir saved by save_pretrained")
    if not (adapter_dir / ADAPTER_CONFIG).is_file() or not any((adapter_dir / w).is_file() for w in ADAPTER_WEIGHTS):
        raise CheckpointError(
            f"{adapter_dir} is not a PEFT adapter dir (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS[0]}): "
            "save one with `model.save_pretrained(dir)`"
        )
    files = [p for p in adapter_dir.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]
    return sorted(files, key=lambda p: p.relative_to(adapter_dir).as_posix())


def iter_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The file's bytes in fixed-size chunks (the last may be shorter; an empty file yields nothing)."""
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in iter_chunks(path):
        digest.update(chunk)
    return digest.hexdigest()


def build_manifest(
    files: list[FileEntry],
    *,
    adapter_config: dict,
    base_model: str,
    base_revision: str | None = None,
    run_id: str | None = None,
    step: int | None = None,
    parent: CID | None = None,
    eval_digest: str | None = None,
) -> dict:
    """The manifest node (a plain dict with CID links) for already-chunked files."""
    if not base_model:
        raise ValueError("base_model is required: pass the Hugging Face id (or name) of the model the adapter fits")
    if step is not None and step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    links = [link.digest for entry in files for link in entry.chunks]
    if len(set(links)) != len(links):
        raise CheckpointError(
            "the adapter repeats a 1 MiB chunk byte for byte; manifests with repeated chunk links are refused "
            "(they let one 1 MiB block expand into any size on checkout)"
        )
    return {
        "type": MANIFEST_TYPE,
        "version": MANIFEST_VERSION,
        "base_model": base_model,
        "base_revision": base_revision,
        "run_id": run_id,
        "step": step,
        "parent": parent,
        "adapter_config": adapter_config,
        "chunk_size": CHUNK_SIZE,
        "files": [entry.to_node() for entry in sorted(files, key=lambda e: e.name)],
        "eval_digest": eval_digest,
    }


def encode_manifest(node: dict) -> bytes:
    """Canonical dag-cbor bytes of a manifest node."""
    return dag_cbor.encode(node)


def decode_manifest(data: bytes, cid: CID | str = "?") -> dict:
    """Decode and validate manifest bytes; CheckpointError if they are not a hivetune checkpoint manifest."""
    try:
        node = dag_cbor.decode(data)
    except Exception as exc:  # dag_cbor raises several decoding error types
        raise CheckpointError(f"block {cid} is not valid dag-cbor: it is not a checkpoint manifest") from exc
    if not isinstance(node, dict) or node.get("type") != MANIFEST_TYPE:
        raise CheckpointError(f"block {cid} is not a hivetune checkpoint manifest: pass a checkpoint CID")
    if node.get("version") != MANIFEST_VERSION:
        raise CheckpointError(f"checkpoint {cid} has manifest version {node.get('version')}: upgrade hivetune")
    try:
        _normalize_links(node, cid)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"checkpoint {cid} has a malformed manifest ({exc!r}): not written by hivetune") from exc
    return node


def _normalize_links(node: dict, cid: CID | str) -> None:
    """Check names, link codecs and hashes, link counts and sizes; print every link in base32."""
    if node.get("chunk_size") != CHUNK_SIZE:
        raise CheckpointError(f"checkpoint {cid} uses chunk_size {node.get('chunk_size')}, not {CHUNK_SIZE}")
    seen: set[bytes] = set()
    total_links = total_bytes = 0
    for entry in node["files"]:
        check_file_name(entry["name"], cid)
        if not isinstance(entry["size"], int) or entry["size"] < 0 or not isinstance(entry["sha256"], str):
            raise TypeError(f"bad size/sha256 for {entry['name']!r}")
        links = entry["chunks"]
        total_links += len(links)
        total_bytes += entry["size"]
        if total_links > MAX_LINKS or total_bytes > MAX_TOTAL_BYTES:
            raise CheckpointError(
                f"checkpoint {cid} links over {MAX_LINKS} chunks or {MAX_TOTAL_BYTES} bytes: refusing to fetch it"
            )
        if len(links) != -(-entry["size"] // CHUNK_SIZE):
            raise CheckpointError(
                f"checkpoint {cid}: {entry['name']} has {entry['size']} bytes but links {len(links)} chunks"
            )
        for link in links:
            _check_link(link, cid, entry["name"], seen)
        entry["chunks"] = [link.set(base="base32") for link in links]
    if node.get("parent") is not None:
        node["parent"] = require_sha256(node["parent"].set(base="base32"))


def _check_link(link: CID, cid, name: str, seen: set[bytes]) -> None:
    if link.codec.name != RAW:
        raise CheckpointError(f"checkpoint {cid} links a non-raw chunk in {name}: it is malformed")
    require_sha256(link)
    if link.digest in seen:
        raise CheckpointError(f"checkpoint {cid} links chunk {link} twice: refusing a manifest with repeated links")
    seen.add(link.digest)


def check_file_name(name: str, cid: CID | str = "?") -> None:
    """Refuse names that could escape the target dir (absolute, '..', backslashes, empty parts)."""
    parts = name.split("/")
    if PurePosixPath(name).is_absolute() or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise CheckpointError(f"checkpoint {cid} names an unsafe file path {name!r}: refusing to materialize it")


def chunk_links(node: dict) -> list[CID]:
    """Every chunk CID the manifest links (duplicates kept, in file order)."""
    return [link for entry in node["files"] for link in entry["chunks"]]


def parent_of(node: dict) -> CID | None:
    parent = node.get("parent")
    return parent.set(base="base32") if parent is not None else None


def read_adapter_config(adapter_dir: Path) -> dict:
    try:
        return json.loads((Path(adapter_dir) / ADAPTER_CONFIG).read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{adapter_dir}/{ADAPTER_CONFIG} is not JSON ({exc}): re-save the adapter") from exc
