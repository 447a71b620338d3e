"""CARv1 files (the IPFS "content archive"): export a checkpoint's blocks, import them anywhere.

Format: varint(len(header)) + dag-cbor {"roots": [CID], "version": 1}, then for each block
varint(len(cid bytes) + len(block)) + cid bytes + block. Encoded with the `multiformats` varint and
CID codecs and `dag-cbor`; `ipfs dag import file.car` and `@ipld/car` read it.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import dag_cbor
from multiformats import CID, varint

from coordination.checkpoints.atomic_files import write_atomically
from coordination.errors import CheckpointError

CIDV0_LENGTH = 34


def car_header(roots: list[CID]) -> bytes:
    header = dag_cbor.encode({"roots": list(roots), "version": 1})
    return varint.encode(len(header)) + header


def car_section(cid: CID, block: bytes) -> bytes:
    cid_bytes = bytes(cid)
    return varint.encode(len(cid_bytes) + len(block)) + cid_bytes + block


def write_car(path: Path, roots: list[CID], blocks: Iterable[tuple[CID, bytes]]) -> None:
    """Write a CARv1 file atomically."""
    sections = (car_section(cid, block) for cid, block in blocks)
    write_atomically(Path(path), itertools.chain([car_header(roots)], sections))


def _cid_length(section: bytes) -> int:
    """Length in bytes of the CID at the start of a section (CIDv0 or CIDv1)."""
    if section[:2] == b"\x12\x20":
        return CIDV0_LENGTH
    stream = io.BytesIO(section)
    for _ in range(3):  # version, codec, multihash function code
        varint.decode_raw(stream)
    digest_length, _, _ = varint.decode_raw(stream)
    return stream.tell() + digest_length


def read_car(stream: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """Parse a CARv1 stream: its roots and an iterator of (CID, block bytes). Blocks are not verified here."""
    try:
        header_length = varint.decode(stream)
        header = dag_cbor.decode(stream.read(header_length))
    except Exception as exc:
        raise CheckpointError("not a CAR file (bad header): pass one written by `hivetune checkpoint export`") from exc
    if not isinstance(header, dict) or header.get("version") != 1 or not isinstance(header.get("roots"), list):
        raise CheckpointError(f"unsupported CAR header {header!r}: only CARv1 is supported")
    return [root.set(base="base32") for root in header["roots"]], _sections(stream)


def _sections(stream: BinaryIO) -> Iterator[tuple[CID, bytes]]:
    while stream.peek(1) if hasattr(stream, "peek") else _has_more(stream):
        try:
            length = varint.decode(stream)
            section = stream.read(length)
            if len(section) != length:
                raise ValueError("truncated section")
            split = _cid_length(section)
            cid = CID.decode(section[:split]).set(base="base32")
        except Exception as exc:
            raise CheckpointError("CAR file is truncated or malformed: re-export it") from exc
        yield cid, section[split:]


def _has_more(stream: BinaryIO) -> bool:
    position = stream.tell()
    more = bool(stream.read(1))
    stream.seek(position)
    return more
