"""CheckpointStore: byte-identical round trips, deterministic CIDs, every change changes the CID, pins and gc."""

import filecmp
import json
import subprocess
import sys
from pathlib import Path

import pytest

from coordination.checkpoints.atomic_files import TEMP_PREFIX
from coordination.checkpoints.manifest import CHUNK_SIZE
from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter
from coordination.errors import CheckpointError

META = dict(base_model="hivetune/tiny", base_revision="r0", run_id="run-1", step=10, eval_digest="ab" * 32)


def literal_adapter(directory: Path) -> Path:
    """An adapter dir from literal bytes (no RNG), for the golden CID: 2 MiB + 5 bytes of weights, 3 chunks."""
    directory.mkdir(parents=True)
    (directory / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]}')
    # 251 does not divide 1 MiB, so no two chunks are equal (repeated chunk links are refused)
    (directory / "adapter_model.safetensors").write_bytes(
        (bytes(range(251)) * (2 * CHUNK_SIZE // 251 + 1))[: 2 * CHUNK_SIZE] + b"tail!"
    )
    return directory


def same_tree(a: Path, b: Path) -> bool:
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file()):
        return False
    match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    return not mismatch and not errors


@pytest.fixture
def adapter(tmp_path):
    directory = write_synthetic_adapter(tmp_path / "adapter", megabytes=2.5, seed=1)
    (directory / "nested").mkdir()
    (directory / "nested" / "notes.txt").write_text("a file in a subdirectory")
    (directory / "empty.bin").write_bytes(b"")
    return directory


def test_round_trip_gives_byte_identical_files(tmp_path, adapter):
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(adapter, **META)
    out = store.get(cid, tmp_path / "out")
    assert same_tree(adapter, out)
    manifest = store.manifest(cid)
    assert [e["name"] for e in manifest["files"]] == sorted(e["name"] for e in manifest["files"])
    sizes = {e["name"]: e["size"] for e in manifest["files"]}
    assert sizes["adapter_model.safetensors"] == (adapter / "adapter_model.safetensors").stat().st_size
    assert sizes["empty.bin"] == 0
    assert manifest["adapter_config"] == json.loads((adapter / "adapter_config.json").read_text())
    assert (manifest["run_id"], manifest["step"], manifest["base_revision"]) == ("run-1", 10, "r0")


def test_get_twice_into_the_same_dir_is_idempotent_but_a_foreign_dir_is_refused(tmp_path, adapter):
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(adapter, **META)
    out = store.get(cid, tmp_path / "out")
    assert store.get(cid, out) == out
    (out / "extra.txt").write_text("not ours")
    with pytest.raises(CheckpointError, match="not empty"):
        store.get(cid, out)


def test_same_content_gives_same_cid_in_any_dir_store_and_process(tmp_path, adapter):
    first = CheckpointStore(tmp_path / "s1").add_adapter(adapter, **META)
    copy = tmp_path / "elsewhere" / "copy"
    CheckpointStore(tmp_path / "s1").get(first, copy)
    assert CheckpointStore(tmp_path / "s2").add_adapter(copy, **META) == first
    code = (
        "import sys; from coordination.checkpoints import CheckpointStore;"
        f"print(CheckpointStore(sys.argv[1]).add_adapter(sys.argv[2], **{META!r}))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s3"), str(copy)], cwd="/", capture_output=True, text=True
    )
    assert other.stdout.strip() == first, other.stderr


def test_golden_cid_pins_the_manifest_format(tmp_path):
    # Any machine, any hivetune install must give this CID for this content; if the manifest format
    # changes on purpose, bump MANIFEST_VERSION and update the literal.
    cid = CheckpointStore(tmp_path / "s").add_adapter(literal_adapter(tmp_path / "a"), **META)
    assert cid == GOLDEN_CID


GOLDEN_CID = "bafyreiabwmdoq45fflzxjetkjbuan5i2w2h6k7aue75lh7lpf2wpgkwtjy"


def _flip_byte(d: Path) -> None:
    path = d / "adapter_model.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _rename(d: Path) -> None:
    (d / "nested" / "notes.txt").rename(d / "nested" / "notes2.txt")


def _add_file(d: Path) -> None:
    (d / "README.md").write_text("x")


CONTENT_CHANGES = {"flip one byte": _flip_byte, "rename a file": _rename, "add a file": _add_file}
META_CHANGES = {
    "base_model": {"base_model": "other/model"},
    "base_revision": {"base_revision": "r1"},
    "run_id": {"run_id": "run-2"},
    "step": {"step": 11},
    "eval_digest": {"eval_digest": "cd" * 32},
    "parent": {"parent": "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
}


@pytest.mark.parametrize("change", CONTENT_CHANGES)
def test_any_content_or_name_change_changes_the_cid(tmp_path, adapter, change):
    store = CheckpointStore(tmp_path / "store")
    before = store.add_adapter(adapter, **META)
    CONTENT_CHANGES[change](adapter)
    assert store.add_adapter(adapter, **META) != before


@pytest.mark.parametrize("field", META_CHANGES)
def test_any_metadata_change_changes_the_cid(tmp_path, adapter, field):
    store = CheckpointStore(tmp_path / "store")
    assert store.add_adapter(adapter, **META) != store.add_adapter(adapter, **{**META, **META_CHANGES[field]})


def test_parent_is_a_link_and_a_raw_parent_is_refused(tmp_path, adapter):
    store = CheckpointStore(tmp_path / "store")
    parent = store.add_adapter(adapter, **META)
    child = store.add_adapter(adapter, **{**META, "step": 20, "parent": parent})
    assert str(store.manifest(child)["parent"]) == parent
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        store.add_adapter(adapter, **{**META, "parent": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"})


def test_add_refuses_a_dir_that_is_not_a_peft_adapter(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a PEFT adapter dir"):
        CheckpointStore(tmp_path / "s").add_adapter(tmp_path / "d", base_model="m")


def test_gc_removes_only_blocks_no_pinned_checkpoint_references(tmp_path, adapter):
    store = CheckpointStore(tmp_path / "store")
    keep = store.add_adapter(adapter, **META)
    (adapter / "nested" / "notes.txt").write_text("changed")  # shares every chunk but this one
    drop = store.add_adapter(adapter, **{**META, "step": 11})
    blocks_before = set(map(str, store.blocks))
    stale = store.blocks.blocks_dir / "aa" / f"{TEMP_PREFIX}left-by-kill"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"partial")
    store.checkout(drop)
    unique_to_drop = set(map(str, store.checkpoint_blocks(drop))) - set(map(str, store.checkpoint_blocks(keep)))
    assert store.unpin(drop)
    report = store.gc()
    remaining = set(map(str, store.blocks))
    assert len(unique_to_drop) == 2  # its manifest and its notes.txt chunk
    assert remaining == blocks_before - unique_to_drop
    assert report.removed_blocks == 2 and report.removed_temp_files >= 1 and not stale.exists()
    assert not (store.checkouts_dir / drop).exists()
    assert store.verify(keep).ok
    assert [row.cid for row in store.ls()] == [keep]


def test_ls_reports_pins_steps_and_sizes(tmp_path, adapter):
    store = CheckpointStore(tmp_path / "store")
    a = store.add_adapter(adapter, **{**META, "step": 2})
    b = store.add_adapter(adapter, **{**META, "step": 1}, pin=False)
    rows = store.ls()
    assert [(r.cid, r.step, r.pinned) for r in rows] == [(b, 1, False), (a, 2, True)]
    total = sum(p.stat().st_size for p in adapter.rglob("*") if p.is_file())
    assert all(r.size == total and r.files == 4 and r.complete for r in rows)


def test_default_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HIVETUNE_STORE", str(tmp_path / "from-env"))
    assert CheckpointStore().root == tmp_path / "from-env"


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE])
def test_chunking_at_the_boundaries(tmp_path, size):
    adapter = literal_adapter(tmp_path / "a")
    payload = (bytes(range(251)) * (size // 251 + 1))[:size]
    (adapter / "adapter_model.safetensors").write_bytes(payload)
    store = CheckpointStore(tmp_path / "s")
    cid = store.add_adapter(adapter, base_model="m")
    entry = next(e for e in store.manifest(cid)["files"] if e["name"] == "adapter_model.safetensors")
    assert len(entry["chunks"]) == -(-size // CHUNK_SIZE)
    assert [len(store.blocks.get(c)) for c in entry["chunks"]] == [
        min(CHUNK_SIZE, size - i) for i in range(0, size, CHUNK_SIZE)
    ]
    assert (store.get(cid, tmp_path / "out") / "adapter_model.safetensors").read_bytes() == payload
