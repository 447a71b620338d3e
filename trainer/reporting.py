"""Run reporting that never blocks: wandb offline unless logged in, the resolved config logged by rank 0.

from trainer.reporting import prepare_reporting, log_resolved_config, is_main_process
prepare_reporting(training_args.report_to)   # sets WANDB_MODE=offline when no API key is known
report_to = default_report_to()              # a swarm peer's default: "wandb" when installed, else "none"
log_resolved_config(output_dir, script=script_args, grpo=training_args)   # rank 0 prints + writes YAML
"""

from __future__ import annotations

import dataclasses
import enum
import json
import netrc
import os
from pathlib import Path


def wandb_logged_in() -> bool:
    """True when a wandb API key is available (env var or ~/.netrc entry for api.wandb.ai)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def prepare_reporting(report_to) -> None:
    """Make wandb (when requested) run offline unless the user is logged in, and never prompt."""
    targets = [report_to] if isinstance(report_to, str) else list(report_to or [])
    if "wandb" in targets or "all" in targets:
        os.environ.setdefault("WANDB_SILENT", "true")
        if not wandb_logged_in():
            os.environ["WANDB_MODE"] = "offline"


def default_report_to() -> str:
    """'wandb' when wandb is importable, else 'none'; pass it to `prepare_reporting` (offline unless logged in)."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        return "none"
    return "wandb"


def is_main_process() -> bool:
    """True on rank 0 (or when not distributed), read from the launcher's env (RANK, set by torchrun/accelerate).

    Deliberately does not create accelerate's PartialState: its first construction is a process-wide
    singleton, and building it before the Trainer (which passes `cpu=True`) would pin the wrong backend.
    """
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """The number of processes of this launch (WORLD_SIZE, 1 when not distributed)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _plain(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return value if isinstance(value, int | float | str | bool | type(None)) else str(value)


def resolved_config(**configs) -> dict:
    """All config objects as one plain dict (dataclasses expanded, enums as values)."""
    return {name: _plain(config) for name, config in configs.items()}


def log_resolved_config(output_dir: str | Path | None, **configs) -> dict:
    """Rank 0 prints the full resolved config (+ the number of processes) and writes `resolved_config.json`."""
    plain = {**resolved_config(**configs), "num_processes": world_size()}
    if is_main_process():
        from rich.console import Console
        from rich.pretty import Pretty

        Console(stderr=True).print("[bold]resolved config[/]", Pretty(plain))
        if output_dir is not None:
            Path(output_dir).mkdir(parents=True, exist_ok=True)
            (Path(output_dir) / "resolved_config.json").write_text(json.dumps(plain, indent=2))
    return plain
