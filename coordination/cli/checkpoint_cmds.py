"""`hivetune checkpoint ...`: content-addressed checkpoints (add, get, verify, ls, export/import CAR, gc, serve).

    hivetune checkpoint add out/adapter --base-model Qwen/Qwen2.5-0.5B-Instruct --run-id RUN --step 100
    hivetune checkpoint get bafyrei... --to restored/ [--initial-peers /ip4/1.2.3.4/tcp/31337/p2p/Qm...]
    hivetune checkpoint verify bafyrei...
    hivetune checkpoint ls [--json]
    hivetune checkpoint export bafyrei... --car ckpt.car      # `ipfs dag import ckpt.car` gives the same root
    hivetune checkpoint import ckpt.car
    hivetune checkpoint gc
    hivetune checkpoint serve [--initial-peers ...]           # announce + serve pinned checkpoints until Ctrl-C

Every command takes --store (default $HIVETUNE_STORE, else <user cache>/hivetune/blocks).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from coordination.cli.options import JsonOption, PeersOption, StoreOption

checkpoint_app = typer.Typer(help="Content-addressed checkpoints: add, get, verify, ls, export/import CAR, gc, serve.")

PrefixOption = Annotated[
    str, typer.Option("--prefix", help="DHT key prefix (the swarm uses the run id).", show_default=True)
]


def _store(root: Path | None):
    from coordination.checkpoints import CheckpointStore

    return CheckpointStore(root)


@checkpoint_app.command("add")
def add(
    adapter_dir: Annotated[Path, typer.Argument(help="PEFT adapter dir (adapter_config.json + weights).")],
    base_model: Annotated[str, typer.Option(help="Base model id the adapter applies to.")] = "hivetune/tiny",
    base_revision: Annotated[str | None, typer.Option(help="Base model revision (commit) if known.")] = None,
    run_id: Annotated[str | None, typer.Option(help="Run id (the run spec's CID).")] = None,
    step: Annotated[int | None, typer.Option(help="Optimizer step of this checkpoint.")] = None,
    parent: Annotated[str | None, typer.Option(help="CID of the checkpoint this one continues.")] = None,
    eval_digest: Annotated[str | None, typer.Option(help="Digest of the eval report, if any.")] = None,
    store: StoreOption = None,
) -> None:
    """Add an adapter dir to the store and print its checkpoint CID (pinned)."""
    cid = _store(store).add_adapter(
        adapter_dir,
        base_model=base_model,
        base_revision=base_revision,
        run_id=run_id,
        step=step,
        parent=parent,
        eval_digest=eval_digest,
    )
    typer.echo(cid)


@checkpoint_app.command("get")
def get(
    cid: Annotated[str, typer.Argument(help="Checkpoint CID (bafyrei...).")],
    to: Annotated[Path, typer.Option("--to", help="New or empty directory to write the adapter into.")],
    initial_peers: PeersOption = None,
    prefix: PrefixOption = "hivetune",
    max_parallel: Annotated[int, typer.Option(help="Blocks in flight when fetching.")] = 4,
    timeout: Annotated[float, typer.Option(help="Seconds for the whole fetch.")] = 600.0,
    store: StoreOption = None,
) -> None:
    """Write a checkpoint's files (verified) into --to; with --initial-peers, fetch missing blocks from the swarm."""
    checkpoints = _store(store)
    if initial_peers and not checkpoints.is_complete(cid):
        _fetch_from_swarm(checkpoints, cid, initial_peers, prefix, max_parallel, timeout)
    typer.echo(checkpoints.get(cid, to))


def _fetch_from_swarm(checkpoints, cid: str, peers: list[str], prefix: str, max_parallel: int, timeout: float) -> None:
    import hivemind
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from coordination.checkpoints.fetch import fetch_checkpoint

    dht = hivemind.DHT(initial_peers=peers, client_mode=True, start=True)
    try:
        columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task(f"fetching {cid[:16]}…", total=None)
            fetch_checkpoint(
                dht,
                cid,
                checkpoints,
                prefix=prefix,
                max_parallel=max_parallel,
                timeout=timeout,
                on_block=lambda size: progress.advance(task, size),
            )
    finally:
        dht.shutdown()


@checkpoint_app.command("verify")
def verify(
    cid: Annotated[str, typer.Argument(help="Checkpoint CID.")],
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Re-hash a checkpoint's manifest, chunks and files; exit 1 if anything is missing or corrupt."""
    report = _store(store).verify(cid)
    if as_json:
        typer.echo(json.dumps({**asdict(report), "ok": report.ok}))
    elif report.ok:
        typer.echo(f"ok: {report.cid}: {report.files} files, {report.size} bytes, {report.blocks} blocks verified")
    else:
        typer.echo(
            f"FAILED: {report.cid}: missing {report.missing}, corrupt {report.corrupt} "
            f"(quarantined: {report.quarantined}), problems {report.problems}",
            err=True,
        )
    if not report.ok:
        raise typer.Exit(1)


@checkpoint_app.command("ls")
def ls(
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """List the checkpoints in the store."""
    rows = _store(store).ls()
    if as_json:
        typer.echo(json.dumps([asdict(row) for row in rows]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("pinned", "complete", "base model", "run", "step", "files", "MB", "parent")
    table.add_column("cid", no_wrap=True, min_width=59)
    for r in rows:
        parent = r.parent[:12] + "…" if r.parent else ""
        step = "" if r.step is None else str(r.step)
        flags = ("yes" if r.pinned else "no", "yes" if r.complete else "NO")
        table.add_row(*flags, r.base_model, r.run_id or "", step, str(r.files), f"{r.size / 1e6:.2f}", parent, r.cid)
    Console().print(table)


@checkpoint_app.command("export")
def export(
    cid: Annotated[str, typer.Argument(help="Checkpoint CID.")],
    car: Annotated[Path, typer.Option("--car", help="CARv1 file to write.")],
    with_parents: Annotated[bool, typer.Option(help="Also include every ancestor checkpoint.")] = False,
    store: StoreOption = None,
) -> None:
    """Export a checkpoint as a CARv1 file (root = the checkpoint CID)."""
    count = _store(store).export_car(cid, car, with_parents=with_parents)
    typer.echo(f"wrote {count} blocks to {car}")


@checkpoint_app.command("import")
def import_(
    car: Annotated[Path, typer.Argument(help="CARv1 file.")],
    store: StoreOption = None,
) -> None:
    """Import every block of a CARv1 file (verified) and pin its checkpoint roots; print the roots."""
    if not car.is_file():
        from coordination.errors import CheckpointError

        raise CheckpointError(f"{car} does not exist: pass a .car file written by `hivetune checkpoint export`")
    for root in _store(store).import_car(car):
        typer.echo(root)


@checkpoint_app.command("pin")
def pin(cid: Annotated[str, typer.Argument(help="Checkpoint CID.")], store: StoreOption = None) -> None:
    """Keep a checkpoint through gc."""
    _store(store).pin(cid)


@checkpoint_app.command("unpin")
def unpin(cid: Annotated[str, typer.Argument(help="Checkpoint CID.")], store: StoreOption = None) -> None:
    """Let gc remove a checkpoint."""
    if not _store(store).unpin(cid):
        typer.echo(f"{cid} was not pinned", err=True)


@checkpoint_app.command("gc")
def gc(store: StoreOption = None) -> None:
    """Delete blocks that no pinned checkpoint references."""
    report = _store(store).gc()
    typer.echo(
        f"removed {report.removed_blocks} blocks ({report.freed_bytes / 1e6:.2f} MB), kept {report.kept_blocks}, "
        f"swept {report.removed_temp_files} temp files"
    )


@checkpoint_app.command("serve")
def serve(
    cids: Annotated[list[str] | None, typer.Argument(help="Checkpoints to serve (default: every pinned one).")] = None,
    initial_peers: PeersOption = None,
    host_maddr: Annotated[list[str] | None, typer.Option(help="Listen multiaddr (repeatable).")] = None,
    prefix: PrefixOption = "hivetune",
    store: StoreOption = None,
) -> None:
    """Announce checkpoints in the DHT and serve their blocks to peers until Ctrl-C."""
    import sys
    import threading

    import hivemind

    from coordination.checkpoints.server import CheckpointServer

    checkpoints = _store(store)
    maddrs = host_maddr or ["/ip4/0.0.0.0/tcp/0"]
    dht = hivemind.DHT(initial_peers=initial_peers or [], host_maddrs=maddrs, start=True)
    try:
        with CheckpointServer(dht=dht, store=checkpoints, prefix=prefix) as server:
            for cid in cids or checkpoints.pinned():
                server.announce(cid)
                typer.echo(f"serving {cid}")
            for maddr in server.maddrs:
                typer.echo(f"peer: {maddr}")
            sys.stdout.flush()  # `peer:` lines are what other machines need; don't leave them in a pipe buffer
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                typer.echo("stopped")
    finally:
        dht.shutdown()


def register(app: typer.Typer) -> None:
    """Add `hivetune checkpoint ...` to the app."""
    app.add_typer(checkpoint_app, name="checkpoint")
