"""The options every `hivetune` command shares (typer Annotated aliases) and the few helpers they all use.

One spelling per concept, with its environment variable where it has one:

    --run PATH            the run spec (run.yaml); its content hash is the run id
    --rpc URL             $HIVETUNE_RPC; default: the run spec's chain.rpc_url, else DEFAULT_RPC
    --deployment PATH     $HIVETUNE_DEPLOYMENT; deployment.json written by `hivetune devnet`
    --key-file PATH       $HIVETUNE_KEY holds the key itself; never a key on the command line
    --store PATH          $HIVETUNE_STORE; the checkpoint block store
    --initial-peers MADDR repeatable; a swarm peer as printed by `hivetune bootstrap`
    --json                machines get one JSON document on stdout

    def stake(amount: str, rpc: RpcOption = None, deployment: DeploymentOption = DEPLOYMENT_FILE,
              key_file: KeyFileOption = None, as_json: JsonOption = False) -> None: ...

This is the only module a command module may import from coordination/cli/ (an import-linter contract
in pyproject.toml). Nothing heavy is imported here, so `hivetune --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from coordination.chain.connect import DEFAULT_DEPLOYMENT, DEFAULT_RPC
from coordination.chain.keys import KEY_ENV

DEPLOYMENT_FILE = Path(DEFAULT_DEPLOYMENT)

RunOption = Annotated[Path, typer.Option("--run", help="Run spec (run.yaml); its content hash (CID) is the run id.")]
RpcOption = Annotated[
    str | None,
    typer.Option(
        "--rpc",
        envvar="HIVETUNE_RPC",
        help=f"JSON-RPC URL of the chain (default: the run spec's chain.rpc_url, else {DEFAULT_RPC}).",
    ),
]
DeploymentOption = Annotated[
    Path | None,
    typer.Option(
        "--deployment",
        envvar="HIVETUNE_DEPLOYMENT",
        help="deployment.json written by `hivetune devnet` (the contracts' addresses and chain id).",
    ),
]
KeyFileOption = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help=f"File holding your 0x-hex Ethereum private key (chmod 600); default: ${KEY_ENV}. "
        "Keys are never taken on the command line.",
    ),
]
StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store", envvar="HIVETUNE_STORE", help="Checkpoint block store (default: <user cache>/hivetune/blocks)."
    ),
]
PeersOption = Annotated[
    list[str] | None,
    typer.Option(
        "--initial-peers", help="Multiaddr of a swarm peer (repeatable), as printed by `hivetune bootstrap`."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")]


def open_chain(rpc: str | None, deployment: Path, spec=None):
    """(w3, clients) of the chain at --rpc (else the spec's, else DEFAULT_RPC), checked against --deployment."""
    from coordination.chain.connect import connect, resolve_rpc

    w3, _, clients = connect(resolve_rpc(rpc, spec), deployment)
    return w3, clients


def open_signed_chain(rpc: str | None, deployment: Path, key_file: Path | None):
    """(w3, clients, account) for a command that sends transactions; the key is read first, so a missing or
    unsafe key file is reported before any network call."""
    from coordination.chain.keys import load_account

    account = load_account(key_file)
    return (*open_chain(rpc, deployment), account)


def emit(as_json: bool, payload, text: str) -> None:
    """One JSON document with --json, else the human line."""
    typer.echo(json.dumps(payload) if as_json else text)


def print_table(title: str, columns, rows) -> None:
    """A rich table of `rows` (sequences of cells, shown with str) under `columns`."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console().print(table)
