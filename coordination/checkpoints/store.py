"""CheckpointStore: add PEFT adapter dirs as IPLD DAGs, materialize them back byte-identical, verify, pin, gc.

    store = CheckpointStore()                      # $HIVETUNE_STORE or <user cache>/hivetune/blocks
    cid = store.add_adapter("out/adapter", base_model="Qwen/Qwen2.5-0.5B-Instruct", run_id=run, step=100)
    store.get(cid, "restored/")                    # same bytes, every chunk re-hashed on the way out
    store.export_car(cid, "ckpt.car")              # `ipfs dag import ckpt.car` gives the same root

Layout under the root: blocks/ (see blockstore.py), quarantine/, pins/<cid> (empty marker files),
checkouts/<cid>/ (verified materializations used by `resolve_adapter`), lock (flock: gc takes it
exclusively, everything that writes blocks takes it shared, so gc never deletes a block being added).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from multiformats import CID
from platformdirs import user_cache_path

from coordination.checkpoints import manifest as mf
from coordination.checkpoints.addressing import DAG_CBOR, RAW, parse_cid
from coordination.checkpoints.atomic_files import fsync_dir, remove_stale_temp_files, temp_path_for, write_atomically
from coordination.checkpoints.blockstore import BlockStore
from coordination.checkpoints.car import read_car, write_car
from coordination.errors import CheckpointError, CorruptBlockError, MissingBlockError

STORE_ENV = "HIVETUNE_STORE"


def default_store_root() -> Path:
    """$HIVETUNE_STORE if set, else the per-user cache dir: <cache>/hivetune/blocks."""
    return Path(os.environ.get(STORE_ENV) or user_cache_path("hivetune") / "blocks")


@dataclass
class VerifyReport:
    """What `verify` found: ok only if the manifest and every linked block are present and hash correctly."""

    cid: str
    files: int = 0
    size: int = 0
    blocks: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.problems)


@dataclass
class CheckpointSummary:
    """One row of `ls`."""

    cid: str
    pinned: bool
    complete: bool
    base_model: str
    run_id: str | None
    step: int | None
    parent: str | None
    files: int
    size: int


@dataclass
class GcReport:
    removed_blocks: int
    freed_bytes: int
    kept_blocks: int
    removed_temp_files: int


class CheckpointStore:
    """A local content-addressed store of checkpoints (manifest + 1 MiB raw chunks)."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else default_store_root()
        self.blocks = BlockStore(self.root)
        self.pins_dir = self.root / "pins"
        self.checkouts_dir = self.root / "checkouts"
        self.quarantine_dir = self.blocks.quarantine_dir

    # -- locking -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self, *, exclusive: bool = False) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold while writing blocks from outside (e.g. a fetch) so a concurrent gc waits."""
        return self._lock(exclusive=False)

    # -- add -------------------------------------------------------------------------------------
    def add_adapter(
        self,
        adapter_dir: Path | str,
        *,
        base_model: str,
        base_revision: str | None = None,
        run_id: str | None = None,
        step: int | None = None,
        parent: str | CID | None = None,
        eval_digest: str | None = None,
        pin: bool = True,
    ) -> str:
        """Add a PEFT adapter dir; return its manifest CID (the checkpoint id). Pinned unless pin=False."""
        adapter_dir = Path(adapter_dir)
        paths = mf.adapter_files(adapter_dir)
        parent_cid = self._parent_link(parent)
        with self._lock():
            entries = [self._add_file(path, path.relative_to(adapter_dir).as_posix()) for path in paths]
            self.blocks.sync()
            node = mf.build_manifest(
                entries,
                adapter_config=mf.read_adapter_config(adapter_dir),
                base_model=base_model,
                base_revision=base_revision,
                run_id=run_id,
                step=step,
                parent=parent_cid,
                eval_digest=eval_digest,
            )
            cid = self.blocks.put(mf.encode_manifest(node), DAG_CBOR)
            if pin:
                self._write_pin(cid)
        return str(cid)

    @staticmethod
    def _parent_link(parent: str | CID | None) -> CID | None:
        if parent is None:
            return None
        cid = parse_cid(parent)
        if cid.codec.name != DAG_CBOR:
            raise CheckpointError(f"parent {cid} is a {cid.codec.name} block, not a checkpoint: pass a manifest CID")
        return cid

    def _add_file(self, path: Path, name: str) -> mf.FileEntry:
        digest, size, chunks = hashlib.sha256(), 0, []
        for chunk in mf.iter_chunks(path):
            digest.update(chunk)
            size += len(chunk)
            chunks.append(self.blocks.put(chunk, RAW, sync_dir=False))
        return mf.FileEntry(name=name, size=size, sha256=digest.hexdigest(), chunks=tuple(chunks))

    # -- read ------------------------------------------------------------------------------------
    def manifest(self, cid: str | CID) -> dict:
        """The verified, decoded manifest node of a checkpoint."""
        cid = parse_cid(cid)
        if cid.codec.name != DAG_CBOR:
            raise CheckpointError(f"{cid} is a {cid.codec.name} block, not a checkpoint manifest (bafyrei...)")
        return mf.decode_manifest(self.blocks.get(cid), cid)

    def checkpoint_blocks(self, cid: str | CID) -> list[CID]:
        """The manifest CID followed by every distinct chunk CID it links, in file order."""
        cid = parse_cid(cid)
        links = [cid] + mf.chunk_links(self.manifest(cid))
        return list(dict.fromkeys(link.set(base="base32") for link in links))

    def missing_blocks(self, cid: str | CID) -> list[CID]:
        """Linked chunks that are absent or fail verification (those are quarantined)."""
        return [link for link in self.checkpoint_blocks(cid)[1:] if not self.blocks.check(link)]

    def is_complete(self, cid: str | CID) -> bool:
        """Whether the manifest and every chunk are present and verify."""
        try:
            return not self.missing_blocks(cid)
        except (MissingBlockError, CorruptBlockError):
            return False

    def get(self, cid: str | CID, to_dir: Path | str) -> Path:
        """Materialize a checkpoint into `to_dir` (new or empty); every chunk and file hash is checked.

        Files are written into a hidden sibling staging dir that is renamed into place only when
        complete, so an interrupted get leaves `to_dir` absent (or as it was), never half-written.
        """
        cid, to_dir = parse_cid(cid), Path(to_dir)
        node = self.manifest(cid)
        if to_dir.exists() and any(to_dir.iterdir()):
            if self._dir_matches(node, to_dir):
                return to_dir
            raise CheckpointError(f"{to_dir} is not empty and holds other files: pass a new or empty --to directory")
        to_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = temp_path_for(to_dir)
        staging.mkdir()
        try:
            for entry in node["files"]:
                self._materialize_file(entry, staging, cid)
            fsync_dir(staging)
            self._move_into_place(staging, to_dir, node)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_dir(to_dir.parent)
        return to_dir

    def read_files(self, cid: str | CID, names: Sequence[str] | None = None) -> dict[str, bytes]:
        """The checkpoint's files (or just `names`) as verified bytes in memory: nothing is written to disk.

        The same checks as `get`: every chunk against its CID, each file's size and sha256 against the
        manifest. What a validator uses to load an adapter without materializing (and fsyncing) a checkout."""
        cid = parse_cid(cid)
        node = self.manifest(cid)
        entries = {entry["name"]: entry for entry in node["files"]}
        missing = [n for n in (names or []) if n not in entries]
        if missing:
            raise CheckpointError(f"checkpoint {cid} has no file(s) {missing}")
        out = {}
        for name in names if names is not None else list(entries):
            entry, parts, size = entries[name], [], 0
            for link in entry["chunks"]:
                chunk = self.blocks.get(link)
                size += len(chunk)
                if size > entry["size"]:
                    raise CheckpointError(
                        f"checkpoint {cid}: {entry['name']} chunks exceed its declared {entry['size']} bytes"
                    )
                parts.append(chunk)
            data = b"".join(parts)
            digest = hashlib.sha256(data).hexdigest()
            if size != entry["size"] or digest != entry["sha256"]:
                raise CheckpointError(
                    f"checkpoint {cid}: {entry['name']} reassembles to {size} bytes / sha256 {digest[:12]}, "
                    f"but the manifest says {entry['size']} / {entry['sha256'][:12]}: the manifest is inconsistent"
                )
            out[name] = data
        return out

    def _move_into_place(self, staging: Path, to_dir: Path, node: dict) -> None:
        if to_dir.exists() and not any(to_dir.iterdir()):
            to_dir.rmdir()
        try:
            os.replace(staging, to_dir)
        except OSError:
            if not (to_dir.is_dir() and self._dir_matches(node, to_dir)):  # a concurrent get already finished
                raise
            shutil.rmtree(staging)

    def _materialize_file(self, entry: dict, staging: Path, cid: CID) -> None:
        target = staging / entry["name"]
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        with open(target, "wb") as f:
            for link in entry["chunks"]:
                chunk = self.blocks.get(link)
                digest.update(chunk)
                size += len(chunk)
                if size > entry["size"]:  # never write past what the manifest declared
                    raise CheckpointError(
                        f"checkpoint {cid}: {entry['name']} chunks exceed its declared {entry['size']} bytes"
                    )
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
            raise CheckpointError(
                f"checkpoint {cid}: {entry['name']} reassembles to {size} bytes / sha256 {digest.hexdigest()[:12]}, "
                f"but the manifest says {entry['size']} / {entry['sha256'][:12]}: the manifest is inconsistent"
            )

    @staticmethod
    def _dir_matches(node: dict, directory: Path) -> bool:
        present = sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())
        if present != [entry["name"] for entry in node["files"]]:
            return False
        files = [(directory / e["name"], e) for e in node["files"]]
        return all(path.stat().st_size == e["size"] and mf.file_sha256(path) == e["sha256"] for path, e in files)

    def checkout(self, cid: str | CID) -> Path:
        """A verified materialization of the checkpoint under the store (reused while it still matches)."""
        cid = parse_cid(cid)
        target = self.checkouts_dir / str(cid)
        if target.exists() and not self._dir_matches(self.manifest(cid), target):
            shutil.rmtree(target)
        return self.get(cid, target)

    # -- verify / list ---------------------------------------------------------------------------
    def verify(self, cid: str | CID) -> VerifyReport:
        """Re-hash the manifest, every chunk and every reassembled file; corrupt blocks are quarantined."""
        cid = parse_cid(cid)
        report = VerifyReport(cid=str(cid))
        try:
            node = self.manifest(cid)
        except (MissingBlockError, CorruptBlockError) as exc:
            self._record(report, exc)
            return report
        for entry in node["files"]:
            self._verify_file(entry, report)
        report.files, report.blocks = len(node["files"]), 1 + len(set(mf.chunk_links(node)))
        return report

    def _verify_file(self, entry: dict, report: VerifyReport) -> None:
        digest, complete = hashlib.sha256(), True
        for link in entry["chunks"]:
            try:
                digest.update(self.blocks.get(link))
            except (MissingBlockError, CorruptBlockError) as exc:
                self._record(report, exc)
                complete = False
        report.size += entry["size"]
        if complete and digest.hexdigest() != entry["sha256"]:
            report.problems.append(f"{entry['name']}: reassembled sha256 differs from the manifest")

    @staticmethod
    def _record(report: VerifyReport, exc: CheckpointError) -> None:
        if isinstance(exc, CorruptBlockError):
            report.corrupt.append(exc.cid)
            report.quarantined.append(exc.quarantine_path)
        else:
            report.missing.append(exc.cid)

    def ls(self) -> list[CheckpointSummary]:
        """Every checkpoint manifest in the store, pinned or not, sorted by (run id, step, cid)."""
        pinned = set(self.pinned())
        rows = []
        for cid in self.blocks:
            if cid.codec.name != DAG_CBOR:
                continue
            try:
                node = self.manifest(cid)
            except CheckpointError:
                continue
            rows.append(self._summary(str(cid), node, pinned))
        return sorted(rows, key=lambda r: (r.run_id or "", r.step if r.step is not None else -1, r.cid))

    def _summary(self, cid: str, node: dict, pinned: set[str]) -> CheckpointSummary:
        parent = mf.parent_of(node)
        return CheckpointSummary(
            cid=cid,
            pinned=cid in pinned,
            complete=all(self.blocks.has(link) for link in mf.chunk_links(node)),
            base_model=node["base_model"],
            run_id=node["run_id"],
            step=node["step"],
            parent=str(parent) if parent else None,
            files=len(node["files"]),
            size=sum(entry["size"] for entry in node["files"]),
        )

    # -- pins / gc -------------------------------------------------------------------------------
    def pin(self, cid: str | CID) -> None:
        """Keep a checkpoint through gc (its manifest must be in the store)."""
        cid = parse_cid(cid)
        self.manifest(cid)
        self._write_pin(cid)

    def _write_pin(self, cid: CID) -> None:
        write_atomically(self.pins_dir / str(cid), [b""])

    def unpin(self, cid: str | CID) -> bool:
        """Let gc remove a checkpoint; return whether it was pinned."""
        path = self.pins_dir / str(parse_cid(cid))
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def pinned(self) -> list[str]:
        if not self.pins_dir.is_dir():
            return []
        return sorted(p.name for p in self.pins_dir.iterdir() if not p.name.startswith("."))

    def gc(self) -> GcReport:
        """Delete every block no pinned checkpoint references, checkouts of unpinned ones, and stale temp files."""
        with self._lock(exclusive=True):
            live: set[str] = set()
            for cid in self.pinned():
                live.add(cid)
                with contextlib.suppress(CheckpointError):
                    live.update(str(link.set(base="base32")) for link in mf.chunk_links(self.manifest(cid)))
            removed = freed = kept = 0
            for cid in list(self.blocks):
                if str(cid) in live:
                    kept += 1
                    continue
                freed += self.blocks.delete(cid)
                removed += 1
            self._remove_unpinned_checkouts(live)
            temps = remove_stale_temp_files(self.root)
        return GcReport(removed_blocks=removed, freed_bytes=freed, kept_blocks=kept, removed_temp_files=temps)

    def _remove_unpinned_checkouts(self, live: set[str]) -> None:
        if self.checkouts_dir.is_dir():
            for checkout in self.checkouts_dir.iterdir():
                if checkout.name not in live:
                    shutil.rmtree(checkout, ignore_errors=True)

    # -- CAR -------------------------------------------------------------------------------------
    def export_car(self, cid: str | CID, path: Path | str, *, with_parents: bool = False) -> int:
        """Write the checkpoint (and, with_parents, its whole lineage) as a CARv1 file; return the block count.

        Without parents the parent link dangles in the CAR; `ipfs dag import --pin-roots=false` accepts that.
        """
        cid = parse_cid(cid)
        blocks = self._lineage_blocks(cid) if with_parents else self.checkpoint_blocks(cid)
        write_car(Path(path), [cid], ((link, self.blocks.get(link)) for link in blocks))
        return len(blocks)

    def _lineage_blocks(self, cid: CID) -> list[CID]:
        blocks: list[CID] = []
        current: CID | None = cid
        while current is not None and current not in blocks:
            blocks += self.checkpoint_blocks(current)
            current = mf.parent_of(self.manifest(current))
        return list(dict.fromkeys(blocks))

    def import_car(self, path: Path | str, *, pin: bool = True) -> list[str]:
        """Import every block of a CARv1 file (each verified before it is written); pin complete checkpoint roots."""
        with open(path, "rb") as stream, self._lock():
            roots, sections = read_car(stream)
            for cid, block in sections:
                self.blocks.put_verified(cid, block, sync_dir=False)
            self.blocks.sync()
            for root in roots:
                if pin and root.codec.name == DAG_CBOR:
                    self._pin_if_complete(root)
        return [str(root) for root in roots]

    def _pin_if_complete(self, root: CID) -> None:
        missing = self.missing_blocks(root)
        if missing:
            raise MissingBlockError(
                f"the CAR holds checkpoint {root} but not {len(missing)} of its chunks (first: {missing[0]}): "
                "re-export it with every block",
                str(missing[0]),
            )
        self._write_pin(root)
