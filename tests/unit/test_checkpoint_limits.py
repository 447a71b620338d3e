"""Hostile manifests cost their sender: repeated chunk links, oversized link lists and non-sha2-256 CIDs are
refused before anything is written; the weights hash ignores everything but the tensors."""

import json
import struct

import dag_cbor
import pytest
from multiformats import CID, multihash

from coordination.checkpoints import manifest as mf
from coordination.checkpoints.addressing import DAG_CBOR, RAW, block_cid, block_matches, parse_cid
from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter
from coordination.checkpoints.weights import safetensors_weights_hash, weights_hash
from coordination.errors import CheckpointError


def hostile_manifest(store: CheckpointStore, links, size: int) -> CID:
    node = mf.build_manifest([], adapter_config={"r": 1}, base_model="hivetune/tiny")
    node["files"] = [{"name": "adapter_model.safetensors", "size": size, "sha256": "00" * 32, "chunks": links}]
    return store.blocks.put(dag_cbor.encode(node), DAG_CBOR)


def test_one_chunk_linked_256_times_is_refused_before_a_byte_is_written(tmp_path):
    store = CheckpointStore(tmp_path / "s")
    chunk = store.blocks.put(b"\x00" * mf.CHUNK_SIZE, RAW)
    cid = hostile_manifest(store, [chunk] * 256, 256 * mf.CHUNK_SIZE)
    with pytest.raises(CheckpointError, match="twice"):
        store.get(cid, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".tmp-out*"))


def test_link_count_must_match_the_declared_size_and_stay_under_the_caps(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path / "s")
    links = [store.blocks.put(bytes([i]) * 10, RAW) for i in range(3)]
    with pytest.raises(CheckpointError, match="links 3 chunks"):
        store.get(hostile_manifest(store, links, 10), tmp_path / "a")  # 10 bytes declared, 3 links
    monkeypatch.setattr(mf, "MAX_LINKS", 2)
    with pytest.raises(CheckpointError, match="refusing to fetch"):
        store.get(hostile_manifest(store, links, 3 * mf.CHUNK_SIZE), tmp_path / "b")
    monkeypatch.setattr(mf, "MAX_LINKS", 8192)
    monkeypatch.setattr(mf, "MAX_TOTAL_BYTES", mf.CHUNK_SIZE)
    with pytest.raises(CheckpointError, match="refusing to fetch"):
        store.get(hostile_manifest(store, links, 3 * mf.CHUNK_SIZE), tmp_path / "c")
    assert not any((tmp_path / d).exists() for d in "abc")


def test_an_adapter_that_repeats_a_chunk_is_refused_at_add(tmp_path):
    adapter = write_synthetic_adapter(tmp_path / "a", megabytes=0.1, seed=0)
    (adapter / "adapter_model.safetensors").write_bytes(b"\x07" * (2 * mf.CHUNK_SIZE))
    with pytest.raises(CheckpointError, match="repeats a 1 MiB chunk"):
        CheckpointStore(tmp_path / "s").add_adapter(adapter, base_model="hivetune/tiny")


@pytest.mark.parametrize("hashfun", ["md5", "sha1", "identity", "sha2-512"])
def test_only_sha2_256_multihashes_are_accepted(hashfun):
    data = b"chunk"
    cid = CID("base32", 1, RAW, multihash.digest(data, hashfun))
    with pytest.raises(CheckpointError, match="only sha2-256"):
        parse_cid(str(cid))
    assert not block_matches(cid, data)
    assert block_matches(block_cid(data, RAW), data)


def test_a_manifest_linking_an_md5_chunk_is_refused(tmp_path):
    store = CheckpointStore(tmp_path / "s")
    md5 = CID("base32", 1, RAW, multihash.digest(b"x", "md5"))
    with pytest.raises(CheckpointError, match="only sha2-256"):
        store.get(hostile_manifest(store, [md5], 1), tmp_path / "out")


def safetensors(tensors: dict, metadata=None, reverse=False) -> bytes:
    header, body, offset = {}, b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        body, offset = body + raw, offset + len(raw)
    if metadata:
        header["__metadata__"] = metadata
    items = list(header.items())[::-1] if reverse else list(header.items())
    text = json.dumps(dict(items)).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + body


def test_weights_hash_ignores_header_order_padding_and_metadata_but_not_tensors():
    tensors = {"a.lora_A": ("F32", [2], b"\x00" * 8), "a.lora_B": ("F32", [2], b"\x01" * 8)}
    base = safetensors_weights_hash(safetensors(tensors))
    assert safetensors_weights_hash(safetensors(tensors, reverse=True)) == base
    assert safetensors_weights_hash(safetensors(tensors, metadata={"step": "7"})) == base
    changed = dict(tensors, **{"a.lora_B": ("F32", [2], b"\x01" * 7 + b"\x02")})
    assert safetensors_weights_hash(safetensors(changed)) != base
    reshaped = dict(tensors, **{"a.lora_B": ("F32", [1, 2], b"\x01" * 8)})
    assert safetensors_weights_hash(safetensors(reshaped)) != base
    with pytest.raises(CheckpointError):
        safetensors_weights_hash(b"\xff" * 16)


def test_manifests_of_one_adapter_with_other_metadata_share_the_weights_hash(tmp_path):
    store = CheckpointStore(tmp_path / "s")
    adapter = write_synthetic_adapter(tmp_path / "a", megabytes=0.2, seed=3)
    cids = {store.add_adapter(adapter, base_model="hivetune/tiny", step=k) for k in range(3)}
    assert len(cids) == 3
    assert {weights_hash(store.checkout(c)) for c in cids} == {weights_hash(adapter)}
