"""A directory of immutable blocks named by CID: atomic writes, verified reads, quarantine.

Layout under the store root (flatfs-like sharding by the next-to-last two characters of the CID):

    blocks/<shard>/<cid>    one file per block, written with write_atomically
    quarantine/<cid>        blocks whose bytes no longer hash to their CID (kept for inspection)

Every read re-hashes the bytes; a block that fails is moved to quarantine and a CorruptBlockError
names both the CID and the quarantine path. A corrupt block is never returned.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from multiformats import CID

from coordination.checkpoints.addressing import block_cid, block_matches, parse_cid
from coordination.checkpoints.atomic_files import TEMP_PREFIX, fsync_dir, write_atomically
from coordination.errors import CorruptBlockError, MissingBlockError


class BlockStore:
    """Immutable CID → bytes storage on the local filesystem."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.blocks_dir = self.root / "blocks"
        self.quarantine_dir = self.root / "quarantine"
        self._unsynced_dirs: set[Path] = set()

    def path_of(self, cid: CID | str) -> Path:
        # a base32 CID string is the file name; encoding a CID is slow in multiformats, so do it once
        text = cid if isinstance(cid, str) and cid.startswith("b") else str(parse_cid(cid))
        return self.blocks_dir / text[-3:-1] / text

    def has(self, cid: CID | str) -> bool:
        """Whether a block file exists (not verified; use `get` or `check` to verify)."""
        return self.path_of(cid).is_file()

    def put(self, data: bytes, codec: str, *, sync_dir: bool = True) -> CID:
        """Store `data` as a block of `codec`; skip the write when a verified copy already exists."""
        cid = block_cid(data, codec)
        self._write_unless_present(cid, data, sync_dir)
        return cid

    def put_verified(self, cid: CID, data: bytes, *, sync_dir: bool = True) -> None:
        """Store bytes received for a known CID; raise CorruptBlockError (writing nothing) if they do not match."""
        if not block_matches(cid, data):
            raise CorruptBlockError(f"bytes received for block {cid} do not hash to it; nothing was written", str(cid))
        self._write_unless_present(cid, data, sync_dir)

    def _write_unless_present(self, cid: CID, data: bytes, sync_dir: bool) -> None:
        path = self.path_of(cid)
        if path.is_file() and self.check(cid):  # a corrupt copy is quarantined by check, then replaced
            return
        write_atomically(path, [data], sync_dir=sync_dir)
        if not sync_dir:
            self._unsynced_dirs.add(path.parent)

    def get(self, cid: CID | str) -> bytes:
        """The verified bytes of a block; MissingBlockError if absent, CorruptBlockError (after quarantine) if bad."""
        cid = parse_cid(cid)
        path = self.path_of(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingBlockError(
                f"block {cid} is not in the store at {self.root}: fetch it from peers "
                "(`hivetune checkpoint get CID --initial-peers ...`) or import a CAR that holds it",
                str(cid),
            ) from None
        if not block_matches(cid, data):
            where = self.quarantine(cid)
            raise CorruptBlockError(
                f"block {cid} is corrupt (its bytes do not hash to its CID); moved to {where}: "
                "re-fetch the checkpoint from peers or re-add it from the source directory",
                str(cid),
                str(where),
            )
        return data

    def check(self, cid: CID | str) -> bool:
        """True if the block is present and verifies; a present-but-corrupt block is quarantined (False)."""
        try:
            self.get(cid)
        except (MissingBlockError, CorruptBlockError):
            return False
        return True

    def quarantine(self, cid: CID | str) -> Path:
        """Move a block file out of `blocks/` into `quarantine/`; return its new path."""
        cid = parse_cid(cid)
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        target = self.quarantine_dir / str(cid)
        os.replace(self.path_of(cid), target)
        fsync_dir(self.quarantine_dir)
        return target

    def delete(self, cid: CID | str) -> int:
        """Remove a block; return the bytes freed (0 if it was absent)."""
        path = self.path_of(cid)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def __iter__(self) -> Iterator[CID]:
        """Every stored block's CID (unverified), in no particular order."""
        if not self.blocks_dir.is_dir():
            return
        for shard in self.blocks_dir.iterdir():
            for entry in shard.iterdir():
                if not entry.name.startswith(TEMP_PREFIX):
                    yield parse_cid(entry.name)

    def sync(self) -> None:
        """fsync the shard directories written with sync_dir=False since the last sync (and blocks/ itself)."""
        dirs, self._unsynced_dirs = self._unsynced_dirs, set()
        with ThreadPoolExecutor(max_workers=8) as pool:  # the journal batches concurrent fsyncs
            list(pool.map(fsync_dir, sorted(dirs)))
        if dirs:
            fsync_dir(self.blocks_dir)
