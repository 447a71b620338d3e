"""Known-answer tests for CIDs: raw blocks match IPFS's bafkrei... form, manifests recompute from their bytes."""

import base64
import hashlib
import os

import dag_cbor
import pytest
from multiformats import CID

from coordination.checkpoints.addressing import DAG_CBOR, RAW, block_cid, block_matches, parse_cid
from coordination.checkpoints.manifest import decode_manifest
from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter
from coordination.errors import CheckpointError

# CIDv1 codes: version 0x01, codec raw 0x55 / dag-cbor 0x71, multihash sha2-256 0x12 with length 0x20.
RAW_PREFIX, DAG_CBOR_PREFIX = bytes([0x01, 0x55, 0x12, 0x20]), bytes([0x01, 0x71, 0x12, 0x20])


def independent_cid(prefix: bytes, data: bytes) -> str:
    """CIDv1 string computed without multiformats: multibase 'b' + lowercase RFC 4648 base32, no padding."""
    return "b" + base64.b32encode(prefix + hashlib.sha256(data).digest()).decode().lower().rstrip("=")


@pytest.mark.parametrize(
    "data, known",
    [
        (b"hello world", "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"),  # `ipfs add --cid-version 1`
        (b"", "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),  # the empty raw block
    ],
)
def test_raw_cid_matches_well_known_ipfs_cids(data, known):
    assert str(block_cid(data, RAW)) == known
    assert independent_cid(RAW_PREFIX, data) == known


@pytest.mark.parametrize("size", [1, 1000, 1 << 20])
def test_raw_cid_is_sha256_in_the_bafkrei_form(size):
    data = os.urandom(size)
    cid = str(block_cid(data, RAW))
    assert cid.startswith("bafkrei")
    assert cid == independent_cid(RAW_PREFIX, data)


def test_manifest_cid_recomputes_from_its_dag_cbor_bytes(tmp_path):
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(write_synthetic_adapter(tmp_path / "a", megabytes=2.5), base_model="hivetune/tiny", step=3)
    manifest_bytes = store.blocks.path_of(cid).read_bytes()
    assert cid.startswith("bafyrei")
    assert cid == independent_cid(DAG_CBOR_PREFIX, manifest_bytes)
    # the bytes are canonical dag-cbor: decoding and re-encoding reproduces them exactly
    assert dag_cbor.encode(dag_cbor.decode(manifest_bytes)) == manifest_bytes
    node = decode_manifest(manifest_bytes, cid)
    weights = next(e for e in node["files"] if e["name"] == "adapter_model.safetensors")
    assert len(weights["chunks"]) == 3  # 2.5 MB in 1 MiB chunks
    assert all(isinstance(link, CID) and link.codec.name == RAW for link in weights["chunks"])


def test_block_matches_detects_any_flipped_bit():
    data = bytearray(os.urandom(4096))
    cid = block_cid(bytes(data), RAW)
    for position in (0, 2048, 4095):
        tampered = bytearray(data)
        tampered[position] ^= 0x01
        assert not block_matches(cid, bytes(tampered))
    assert block_matches(cid, bytes(data))


def test_parse_cid_normalizes_to_base32_and_rejects_garbage():
    cid = block_cid(b"x", DAG_CBOR)
    assert str(parse_cid(cid.encode("base58btc"))) == str(cid)
    with pytest.raises(CheckpointError, match="not a CID"):
        parse_cid("not-a-cid")
