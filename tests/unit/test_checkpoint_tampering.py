"""Tampering: flipped bits, truncation, missing blocks, bad manifests -> a clear error, quarantine, nothing loaded."""

import dag_cbor
import pytest

from coordination.checkpoints.addressing import DAG_CBOR, RAW, block_cid
from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter
from coordination.errors import CheckpointError, CorruptBlockError, MissingBlockError


@pytest.fixture
def stored(tmp_path):
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(write_synthetic_adapter(tmp_path / "adapter", megabytes=2.5), base_model="hivetune/tiny")
    weights = next(e for e in store.manifest(cid)["files"] if e["name"] == "adapter_model.safetensors")
    return store, cid, str(weights["chunks"][1])


def flip_bit(path, position=12345):
    data = bytearray(path.read_bytes())
    data[position] ^= 0x10
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-1])


@pytest.mark.parametrize("damage", [flip_bit, truncate], ids=["flipped bit", "truncated"])
def test_damaged_chunk_is_quarantined_and_nothing_is_materialized(tmp_path, stored, damage):
    store, cid, chunk = stored
    damage(store.blocks.path_of(chunk))
    with pytest.raises(CorruptBlockError) as info:
        store.get(cid, tmp_path / "out")
    assert info.value.cid == chunk and chunk in str(info.value) and info.value.quarantine_path in str(info.value)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".tmp-out*")), "the staging dir must be removed"
    assert (store.quarantine_dir / chunk).is_file() and not store.blocks.has(chunk)
    report = store.verify(cid)
    assert not report.ok and report.missing == [chunk]  # quarantined on first read, absent afterwards


def test_verify_reports_the_corrupt_block_and_where_it_went(stored):
    store, cid, chunk = stored
    flip_bit(store.blocks.path_of(chunk))
    report = store.verify(cid)
    assert not report.ok
    assert report.corrupt == [chunk] and report.quarantined == [str(store.quarantine_dir / chunk)]


def test_manifest_linking_a_missing_block_is_detected(tmp_path, stored):
    store, cid, chunk = stored
    store.blocks.delete(chunk)
    with pytest.raises(MissingBlockError, match=chunk):
        store.get(cid, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert store.verify(cid).missing == [chunk]
    assert not store.is_complete(cid)


def test_corrupt_manifest_is_quarantined(tmp_path, stored):
    store, cid, _ = stored
    flip_bit(store.blocks.path_of(cid), position=40)
    with pytest.raises(CorruptBlockError, match=cid):
        store.get(cid, tmp_path / "out")
    assert (store.quarantine_dir / cid).is_file()


def test_manifest_with_a_path_escaping_the_target_is_refused(tmp_path, stored):
    store, cid, _ = stored
    node = dag_cbor.decode(store.blocks.get(cid))
    node["files"][0]["name"] = "../escaped.json"
    evil = str(store.blocks.put(dag_cbor.encode(node), DAG_CBOR))
    with pytest.raises(CheckpointError, match="unsafe file path"):
        store.get(evil, tmp_path / "out" / "inner")
    assert not (tmp_path / "out" / "escaped.json").exists()


def test_manifest_whose_sizes_lie_is_refused(tmp_path, stored):
    store, cid, _ = stored
    node = dag_cbor.decode(store.blocks.get(cid))
    node["files"][0]["size"] += 1
    liar = str(store.blocks.put(dag_cbor.encode(node), DAG_CBOR))
    with pytest.raises(CheckpointError, match="manifest is inconsistent"):
        store.get(liar, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_raw_block_or_foreign_dag_cbor_is_not_a_checkpoint(stored):
    store, _, chunk = stored
    with pytest.raises(CheckpointError, match="not a checkpoint manifest"):
        store.manifest(chunk)
    foreign = store.blocks.put(dag_cbor.encode({"hello": "world"}), DAG_CBOR)
    with pytest.raises(CheckpointError, match="not a hivetune checkpoint manifest"):
        store.manifest(str(foreign))


def test_put_verified_writes_nothing_for_wrong_bytes(stored):
    store, _, _ = stored
    cid = block_cid(b"right bytes", RAW)
    with pytest.raises(CorruptBlockError):
        store.blocks.put_verified(cid, b"wrong bytes")
    assert not store.blocks.has(cid)
