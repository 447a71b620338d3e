"""The `hivetune` command line (typer + rich).

Every command module registers its commands on the one app here. Heavy imports (torch,
transformers, hivemind, web3) happen inside the command functions, never at module import,
so `hivetune --help` answers in well under a second.

    hivetune --help
    hivetune data generate --task arithmetic --n 1000 --out traces.jsonl
    hivetune checkpoint add ./adapter
    hivetune devnet

Options shared by many commands (--run, --rpc, --deployment, --key-file, --store, --initial-peers,
--json) are defined once, in `coordination.cli.options`. No command takes a private key on the
command line (`ps` shows argv to every user): `--key 0x...` is refused with a one-line error that
points to --key-file and $HIVETUNE_KEY.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from coordination.errors import ConfigError, HivetuneError

RAW_KEY_FLAGS = ("--key", "--private-key")


def refuse_keys_on_argv(args: list[str]) -> None:
    """ConfigError if argv carries a private key flag (`--key 0x...`, `--key=0x...`); nothing after `--`."""
    for arg in args:
        if arg == "--":
            return
        flag = arg.split("=", 1)[0]
        if flag in RAW_KEY_FLAGS:
            raise ConfigError(
                f"{flag} is not accepted: a key on the command line is visible to every user (ps); "
                "pass --key-file PATH (a file holding the 0x-hex key, chmod 600) or set HIVETUNE_KEY"
            )


class HivetuneGroup(TyperGroup):
    """The root command group: checks the whole argv (every subcommand's too) before parsing it."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        refuse_keys_on_argv(args)
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=HivetuneGroup,
    name="hivetune",
    help="Decentralized GRPO + LoRA post-training: train, share checkpoints by CID, attest, stake and vote.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)

# Each module defines `register(app)`; order is the order of `--help`.
COMMAND_MODULES = (
    "coordination.cli.trainer_cmds",
    "coordination.cli.swarm_cmds",
    "coordination.cli.checkpoint_cmds",
    "coordination.cli.attest_cmds",
    "coordination.cli.chain_cmds",
    "coordination.cli.governance_cmds",
)


@app.callback()
def _root() -> None:
    """hivetune: decentralized GRPO + LoRA post-training."""


@app.command()
def version() -> None:
    """Print the installed hivetune version."""
    from importlib.metadata import version as _version

    typer.echo(_version("hivetune"))


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    """Console entry point: runs the app and turns our errors into one clear line and exit code 2.

    stdout is line-buffered even into a file or pipe: the ranks of `accelerate launch` / torchrun share
    one stdout, and a block-buffered rank flushes 8 KiB at a time, cutting a line in two, while an
    unbuffered one (PYTHONUNBUFFERED=1) writes a print's text and its newline apart: either way another
    rank's `--json` summary could land in the middle of a line. Whole lines, one write each.
    """
    sys.stdout.reconfigure(line_buffering=True, write_through=False)
    from trainer.errors import TrainerConfigError

    try:
        app()
    except (HivetuneError, TrainerConfigError) as exc:  # a trainer input error too: an off-spec base or release
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
