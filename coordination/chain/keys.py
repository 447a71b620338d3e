"""Ethereum private keys for commands: from a key file or $HIVETUNE_KEY, never from the command line.

    hivetune stake 100 --key-file ~/.hivetune/me.key     # one line, 0x + 64 hex digits, chmod 600
    HIVETUNE_KEY=0x... hivetune stake 100                  # or the environment (not shown by `ps`)

A key on argv is readable by every user of the machine (`ps`, /proc/PID/cmdline), so the CLI has
no `--key`. A key file must be a regular file that only its owner can read or write (as ssh demands
of private keys); `write_key_file` writes one that way from the first byte.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from coordination.errors import ConfigError

KEY_ENV = "HIVETUNE_KEY"
HOW = f"pass --key-file PATH (a file holding a 0x-hex private key, chmod 600) or set {KEY_ENV}"
_PRIVATE_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")


def read_private_key(key_file: str | Path | None) -> str | None:
    """The 0x-hex key in `key_file`, else in $HIVETUNE_KEY, else None; ConfigError if either is unusable."""
    if key_file is not None:
        return _checked(_read_key_file(Path(key_file)), f"key file {key_file}")
    if os.environ.get(KEY_ENV, "").strip():
        return _checked(os.environ[KEY_ENV], f"${KEY_ENV}")
    return None


def require_private_key(key_file: str | Path | None, *, role: str = "signing") -> str:
    """`read_private_key`, or a ConfigError saying how to give the key when there is none."""
    key = read_private_key(key_file)
    if key is None:
        raise ConfigError(f"no {role} key: {HOW}")
    return key


def load_account(key_file: str | Path | None, *, role: str = "signing"):
    """The eth-account LocalAccount of `require_private_key`."""
    from eth_account import Account

    return Account.from_key(require_private_key(key_file, role=role))


def write_key_file(path: str | Path, key: str | bytes) -> Path:
    """Write `key` (hex or 32 bytes) as 0x-hex to `path`, created with mode 0600 (never readable by others)."""
    text = "0x" + (key.hex() if isinstance(key, bytes) else key).removeprefix("0x")
    _checked(text, "the key to write")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as sink:
        os.fchmod(sink.fileno(), 0o600)  # an existing file keeps its old mode through O_CREAT
        sink.write(text + "\n")
    return path


def _read_key_file(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        raise ConfigError(f"key file {path} not found: {HOW}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"key file {path} is not a regular file: {HOW}")
    if os.name == "posix" and info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise ConfigError(f"key file {path} is accessible by other users (mode {mode:o}): run `chmod 600 {path}`")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read key file {path}: {type(exc).__name__}") from None


def _checked(text: str, source: str) -> str:
    key = text.strip()
    if not _PRIVATE_KEY.fullmatch(key) or int(key.removeprefix("0x"), 16) == 0:
        raise ConfigError(f"{source} does not hold a private key: expected one line of 0x + 64 hex digits")
    return "0x" + key.removeprefix("0x").lower()
