"""Crash-safe file writes: write a hidden temp file in the target's directory, fsync, rename, fsync the dir.

A reader (or a process restarted after `kill -9`) sees either no file or the whole file, never a
prefix of it. Leftover temp files are named `.tmp-*` and are swept by `remove_stale_temp_files`.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path

TEMP_PREFIX = ".tmp-"


def temp_path_for(path: Path) -> Path:
    """A fresh hidden temp path next to `path` (same directory, hence same filesystem)."""
    return path.parent / f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}"


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, pieces: Iterable[bytes], *, sync_dir: bool = True) -> None:
    """Write the concatenation of `pieces` to `path` atomically (temp file, fsync, os.replace, fsync dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            for piece in pieces:
                f.write(piece)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def remove_stale_temp_files(root: Path) -> int:
    """Delete `.tmp-*` files and dirs under `root` left by killed writers; return how many were removed."""
    removed = 0
    for tmp in sorted(root.rglob(f"{TEMP_PREFIX}*"), reverse=True):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed
