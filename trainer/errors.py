"""Exceptions of `trainer/` (it never imports `coordination/`).

Every class is a `ValueError` subclass whose message is one line saying what is wrong and how to
fix it; the CLI wraps them into `coordination.errors.ConfigError` and prints that line.
"""


class TrainerConfigError(ValueError):
    """A trainer setting, recipe config or argument is invalid."""


class ModelNotFoundError(TrainerConfigError):
    """A model id/path cannot be found locally and cannot be fetched."""


class UnknownTaskError(TrainerConfigError):
    """`get_task` was given a name that is not registered."""


class DatasetFormatError(TrainerConfigError):
    """A dataset file is unreadable or has a malformed record (the message names file and line)."""
