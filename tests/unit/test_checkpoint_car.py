"""CARv1 export/import: our reader, the reference JS reader (@ipld/car), tampered CARs."""

import io
import json
import shutil
import subprocess

import pytest

from coordination.checkpoints.addressing import block_matches
from coordination.checkpoints.car import read_car
from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter
from coordination.errors import CheckpointError, CorruptBlockError, MissingBlockError


@pytest.fixture
def exported(tmp_path):
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(write_synthetic_adapter(tmp_path / "a", megabytes=2.5), base_model="hivetune/tiny", step=1)
    car = tmp_path / "ckpt.car"
    count = store.export_car(cid, car)
    return store, cid, car, count


def test_car_holds_the_root_and_every_block_verbatim(exported):
    store, cid, car, count = exported
    with open(car, "rb") as stream:
        roots, sections = read_car(stream)
        blocks = dict(sections)
    assert [str(r) for r in roots] == [cid]
    assert sorted(map(str, blocks)) == sorted(map(str, store.checkpoint_blocks(cid))) and len(blocks) == count == 5
    assert all(block_matches(c, data) and data == store.blocks.get(c) for c, data in blocks.items())


def test_import_into_a_fresh_store_reproduces_the_checkpoint(tmp_path, exported):
    store, cid, car, _ = exported
    fresh = CheckpointStore(tmp_path / "fresh")
    assert fresh.import_car(car) == [cid]
    assert fresh.verify(cid).ok and fresh.pinned() == [cid]
    assert (fresh.get(cid, tmp_path / "o1") / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "a" / "adapter_model.safetensors"
    ).read_bytes()


def test_import_rejects_a_tampered_block(tmp_path, exported):
    _, cid, car, _ = exported
    data = bytearray(car.read_bytes())
    data[len(data) // 2] ^= 0xFF
    car.write_bytes(bytes(data))
    fresh = CheckpointStore(tmp_path / "fresh")
    with pytest.raises(CorruptBlockError):
        fresh.import_car(car)
    assert fresh.pinned() == [] and all(fresh.blocks.check(c) for c in fresh.blocks)


def test_import_of_a_car_missing_a_chunk_does_not_pin(tmp_path, exported):
    store, cid, car, _ = exported
    with open(car, "rb") as stream:
        roots, sections = read_car(stream)
        blocks = list(sections)
    from coordination.checkpoints.car import write_car

    write_car(tmp_path / "partial.car", roots, blocks[:-1])
    fresh = CheckpointStore(tmp_path / "fresh")
    with pytest.raises(MissingBlockError, match="not 1 of its chunks"):
        fresh.import_car(tmp_path / "partial.car")
    assert fresh.pinned() == []


def test_garbage_is_not_a_car():
    with pytest.raises(CheckpointError, match="not a CAR file"):
        read_car(io.BufferedReader(io.BytesIO(b"\xff\xff\xff\x0fgarbage")))


def test_export_with_parents_includes_the_lineage(tmp_path, exported):
    store, parent, _, count = exported
    (tmp_path / "a" / "adapter_config.json").write_text('{"r": 16}')
    child = store.add_adapter(tmp_path / "a", base_model="hivetune/tiny", step=2, parent=parent)
    assert store.export_car(child, tmp_path / "lineage.car", with_parents=True) == count + 2  # + manifest, config


JS_READER = """
import fs from 'node:fs';
import { CarReader } from '@ipld/car';
import * as dagCbor from '@ipld/dag-cbor';
import { sha256 } from 'multiformats/hashes/sha2';
const reader = await CarReader.fromBytes(fs.readFileSync(process.argv[2]));
const blocks = [];
for await (const { cid, bytes } of reader.blocks()) {
  const digest = await sha256.digest(bytes);
  blocks.push({ cid: cid.toString(), ok: Buffer.from(digest.bytes).equals(Buffer.from(cid.multihash.bytes)) });
}
const roots = (await reader.getRoots()).map(String);
const manifest = dagCbor.decode((await reader.get(roots[0])).bytes);
console.log(JSON.stringify({ roots, blocks, files: manifest.files.map(f => f.name), step: manifest.step }));
"""


@pytest.mark.slow
def test_reference_js_car_reader_accepts_the_export(tmp_path, exported):
    store, cid, car, _ = exported
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed")
    js = tmp_path / "js"
    js.mkdir()
    (js / "package.json").write_text(json.dumps({"name": "car-check", "private": True, "type": "module"}))
    install = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "@ipld/car@5", "@ipld/dag-cbor@9", "multiformats@13"],
        cwd=js,
        capture_output=True,
        text=True,
        timeout=240,
    )
    if install.returncode != 0:
        pytest.skip(f"npm install failed (offline?): {install.stderr[-300:]}")
    (js / "read.mjs").write_text(JS_READER)
    result = subprocess.run(["node", "read.mjs", str(car)], cwd=js, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert parsed["roots"] == [cid] and parsed["step"] == 1
    assert sorted(b["cid"] for b in parsed["blocks"]) == sorted(map(str, store.checkpoint_blocks(cid)))
    assert all(b["ok"] for b in parsed["blocks"])
    assert parsed["files"] == [e["name"] for e in store.manifest(cid)["files"]]
