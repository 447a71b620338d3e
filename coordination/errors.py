"""Typed exceptions of hivetune.

`HivetuneError` is the root: the CLI prints its message as one line and exits with code 2.
Every message says what went wrong *and* what to do about it.
"""


class HivetuneError(Exception):
    """Base class of every error hivetune raises on bad input from users, peers or the chain."""


class ConfigError(HivetuneError, ValueError):
    """A config or run spec is malformed or inconsistent."""


class CheckpointError(HivetuneError):
    """A checkpoint or block is missing, corrupt or does not match its CID."""


class SwarmError(HivetuneError):
    """A peer-to-peer problem: no initial peer answered, a run id mismatch, a bad peer."""


class ChainError(HivetuneError):
    """A chain call failed; for a contract revert `error_name` and `args` hold the decoded custom error."""

    def __init__(self, message: str, error_name: str | None = None, args: tuple = ()):
        super().__init__(message)
        self.error_name = error_name
        self.error_args = tuple(args)


class AttestationError(HivetuneError):
    """A receipt, attestation or signature failed verification."""


class MissingBlockError(CheckpointError):
    """A block a checkpoint links to is not in the local store (and no peer supplied it)."""

    def __init__(self, message: str, cid: str):
        super().__init__(message)
        self.cid = cid


class CorruptBlockError(CheckpointError):
    """A stored block does not hash to its CID; it has been moved to quarantine and was not used."""

    def __init__(self, message: str, cid: str, quarantine_path: str | None = None):
        super().__init__(message)
        self.cid = cid
        self.quarantine_path = quarantine_path


class FetchError(CheckpointError):
    """A checkpoint could not be pulled from the swarm: no holder announced it, or every holder failed."""
