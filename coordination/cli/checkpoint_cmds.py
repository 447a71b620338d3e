"""CLI commands: filled in by the issue that owns this part (see coordination/cli/app.py)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `hivetune` app."""
