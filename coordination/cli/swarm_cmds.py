"""CLI commands of the swarm: `hivetune bootstrap`, `hivetune join`, `hivetune status`.

hivetune bootstrap --run recipes/runs/arith_tiny.yaml --host-maddr /ip4/0.0.0.0/tcp/31337 --identity boot.key [--json]
hivetune join --run recipes/runs/arith_tiny.yaml --initial-peers /ip4/1.2.3.4/tcp/31337/p2p/12D3... --max-epochs 20
hivetune join --run run.yaml --initial-peers ... --key-file me.key --deployment deployment.json   # attested peer
hivetune status --run recipes/runs/arith_tiny.yaml --initial-peers /ip4/1.2.3.4/tcp/31337/p2p/12D3... [--json]
hivetune verify-update --run run.yaml --journal peer/consensus.json --store peer/checkpoints [--epoch 7] [--json]
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from coordination.cli.options import (
    DeploymentOption,
    JsonOption,
    KeyFileOption,
    PeersOption,
    RpcOption,
    RunOption,
    StoreOption,
    emit,
    open_chain,
    print_table,
)

DEFAULT_HOST = ["/ip4/0.0.0.0/tcp/0"]
HOST_HELP = "Listen address (repeatable); default /ip4/0.0.0.0/tcp/0 (all interfaces, OS port)."
ANNOUNCE_HELP = "Public address to advertise (repeatable), e.g. behind port forwarding."
IdentityOption = Annotated[str | None, typer.Option("--identity", help="libp2p key file (created if missing).")]


def bootstrap(
    run: RunOption,
    host_maddr: Annotated[list[str] | None, typer.Option("--host-maddr", help=HOST_HELP)] = None,
    announce_maddr: Annotated[list[str] | None, typer.Option("--announce-maddr", help=ANNOUNCE_HELP)] = None,
    identity: IdentityOption = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds (default: never).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Start the run's entry DHT node, print the multiaddrs to share, and stay up (Ctrl-C stops).

    With --json: one JSON line {name, run_id, maddrs} once the node is up."""
    from rich.console import Console

    from coordination.swarm.peer import start_bootstrap
    from coordination.swarm.runspec import load_run_spec

    spec = load_run_spec(run)
    node = start_bootstrap(
        spec, host_maddrs=host_maddr or DEFAULT_HOST, announce_maddrs=announce_maddr or None, identity_path=identity
    )
    if as_json:
        emit(True, {"name": spec.name, "run_id": spec.run_id, "maddrs": node.maddrs}, "")
    else:
        console = Console()
        console.print(f"run [bold]{spec.name}[/] id {spec.run_id}")
        console.print("share one of these with peers ([bold]--initial-peers[/]):")
        for maddr in node.maddrs:
            print(maddr, flush=True)
    try:
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        node.shutdown()


def join(
    run: RunOption,
    initial_peers: PeersOption,
    client_mode: Annotated[
        bool, typer.Option("--client-mode", help="Behind NAT/firewall: outbound connections only.")
    ] = False,
    identity: IdentityOption = None,
    host_maddr: Annotated[list[str] | None, typer.Option("--host-maddr", help=HOST_HELP)] = None,
    max_epochs: Annotated[
        int | None, typer.Option("--max-epochs", help="Stop at this epoch of the run (restarts continue).")
    ] = None,
    output_dir: Annotated[
        str, typer.Option("--output-dir", help="Where the final adapter is saved.")
    ] = "outputs/peer",
    report_to: Annotated[
        str | None, typer.Option("--report-to", help="wandb | none (default: wandb, offline).")
    ] = None,
    as_json: JsonOption = False,
    key_file: KeyFileOption = None,
    deployment: DeploymentOption = None,
    rpc: RpcOption = None,
    start: Annotated[
        str, typer.Option("--from", help="Start adapter (attested peers): promoted | a checkpoint CID | base.")
    ] = "promoted",
    store: StoreOption = None,
    rollouts_dir: Annotated[
        str | None, typer.Option("--rollouts-dir", help="Where signed receipts + records go (attested peers).")
    ] = None,
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="After training, keep serving checkpoints + records.")
    ] = False,
) -> None:
    """Join a run: check the spec against the swarm, join its head epoch, train and average LoRA gradients.

    With an Ethereum key (--key-file or $HIVETUNE_KEY) the peer is attested: it starts from the run's promoted
    checkpoint (fetched by CID and verified), works on its assigned prompts, and signs a work receipt every epoch.
    """
    from coordination.chain.keys import read_private_key
    from coordination.checkpoints import CheckpointStore
    from coordination.swarm.peer import Peer, PeerConfig
    from coordination.swarm.runspec import load_run_spec

    key = read_private_key(key_file)  # before any network: a bad key file is a one-line error
    _log_info_to_stderr()
    spec = load_run_spec(run)
    spec.model.check_libraries()  # before any network: another release would get this honest peer flagged
    config = PeerConfig(initial_peers=tuple(initial_peers), host_maddrs=tuple(host_maddr or DEFAULT_HOST),
                        identity_path=identity, client_mode=client_mode, max_epochs=max_epochs,
                        output_dir=output_dir, owner_key_path=f"{output_dir}/owner.key",
                        report_to=report_to)  # fmt: skip
    checkpoints = CheckpointStore(store) if store is not None else None
    if key is None:
        peer = Peer(spec, config, store=checkpoints)
    else:
        peer = _attested_peer(spec, config, key=key, deployment=deployment, rpc=rpc, start=start, store=checkpoints,
                              rollouts_dir=rollouts_dir or f"{output_dir}/rollouts")  # fmt: skip
    peer.run(on_ready=lambda result, dht: _report_and_serve(peer, result, dht, as_json=as_json, serve=serve))


def _attested_peer(spec, config, *, key, deployment, rpc, start, store, rollouts_dir):
    from eth_account import Account

    from coordination.attest.rollout_store import RolloutDirectory
    from coordination.checkpoints import CheckpointStore
    from coordination.governance.joining import attested_peer

    clients = open_chain(rpc, deployment, spec)[1] if deployment is not None else None
    account, rollouts = Account.from_key(key), RolloutDirectory(rollouts_dir)
    store = store or CheckpointStore()
    return attested_peer(spec, config, account=account, clients=clients, store=store, rollouts=rollouts, start=start)


def _report_and_serve(peer, result, dht, *, as_json: bool, serve: bool) -> None:
    """Print the peer's summary (one JSON line with --json); with --serve keep serving until Ctrl-C."""
    import dataclasses

    from coordination.swarm.dht_node import visible_maddrs

    summary = {**dataclasses.asdict(result), "rounds": len(result.rounds), "start_checkpoint": peer.start_cid,
               "round_groups": [r.group_size for r in result.rounds], "round_entered": [r.ok for r in result.rounds],
               "final_checkpoint": result.cids.get(str(result.epochs)),
               "maddrs": visible_maddrs(dht) if dht is not None else []}  # fmt: skip
    if hasattr(peer.hook, "summary"):
        summary.update(peer.hook.summary())
    print(json.dumps(summary) if as_json else f"done: {summary}", flush=True)
    if serve and dht is not None:
        try:
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass


def status(
    run: RunOption,
    initial_peers: PeersOption,
    as_json: JsonOption = False,
    deployment: DeploymentOption = None,
    rpc: RpcOption = None,
) -> None:
    """Print the run's progress from the DHT (every live peer's epoch, throughput, last averaging round)
    and, with --deployment, the promoted checkpoint and the open promotion proposals."""
    import dataclasses

    from coordination.swarm.dht_node import start_dht
    from coordination.swarm.runspec import load_run_spec
    from coordination.swarm.status import read_run_status

    spec = load_run_spec(run)
    dht = start_dht(initial_peers=initial_peers, host_maddrs=["/ip4/127.0.0.1/tcp/0"], client_mode=True)
    try:
        peers = read_run_status(dht, spec.run_id)
    finally:
        dht.shutdown()
    chain = None
    if deployment is not None:  # also the promoted checkpoint and the promotion proposals (eval scores, tallies)
        from coordination.governance.promotion import PROPOSAL_COLUMNS, promotion_status

        chain = promotion_status(*open_chain(rpc, deployment, spec), spec.run_id)
    if as_json:
        emit(True, {"run_id": spec.run_id, "peers": [dataclasses.asdict(p) for p in peers], "chain": chain}, "")
        return
    _print_table(spec, peers)
    if chain is not None:
        print(f"promoted checkpoint: {chain['promoted'] or 'none yet'}")
        rows = ([r[c] for c in PROPOSAL_COLUMNS] for r in chain["proposals"])
        print_table("promotion proposals", PROPOSAL_COLUMNS, rows)


def _print_table(spec, peers) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{spec.name} ({spec.run_id[:16]}...): {len(peers)} peer(s)")
    for column in ("peer", "epoch", "steps", "peers seen", "samples/s", "last round", "reward", "rejected"):
        table.add_column(column)
    for p in peers:
        round_text = f"{p.round_group_size} peers, {p.round_seconds:.2f}s, {p.round_bytes_sent / 1e3:.1f} kB"
        reward = "-" if p.reward_mean is None else f"{p.reward_mean:.3f}"
        table.add_row(
            p.peer_id[-10:], str(p.epoch), str(p.local_steps), str(p.peers), f"{p.global_samples_per_s:.1f}",
            round_text, reward, str(p.rejected_parts),
        )  # fmt: skip
    Console().print(table)


def _log_info_to_stderr() -> None:
    """Show our INFO lines (catching up, rejected peers) on stderr; hivemind keeps its own handler."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger("coordination")
    root.setLevel(logging.INFO)
    root.addHandler(handler)


def verify_update(
    run: RunOption,
    journal: Annotated[str, typer.Option("--journal", help="A peer's consensus.json (its rounds and CIDs).")],
    store: StoreOption,
    epoch: Annotated[
        list[int] | None, typer.Option("--epoch", help="Epoch to check (repeatable); default: every round.")
    ] = None,
    initial_peers: PeersOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per verdict.")] = False,
) -> None:
    """Recompute epochs from their parent state and committed contributions; exit 1 if any CID does not follow."""
    from coordination.checkpoints.store import CheckpointStore
    from coordination.swarm.runspec import load_run_spec
    from coordination.swarm.update_check import check_journal

    spec = load_run_spec(run)
    spec.model.check_libraries()  # recomputation is bit for bit only under the run's releases
    verdicts = check_journal(
        spec, journal_path=journal, store=CheckpointStore(store), epochs=epoch, initial_peers=initial_peers or []
    )
    for v in verdicts:
        line = {"epoch": v.epoch + 1, "ok": v.ok, "claimed": v.claimed, "recomputed": v.recomputed,
                "reason": v.reason, "culprits": v.culprits}  # fmt: skip
        print(json.dumps(line) if as_json else (f"epoch {v.epoch + 1}: ok {v.claimed}" if v.ok else f"FLAGGED {line}"))
    if not all(v.ok for v in verdicts):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `hivetune` app."""
    app.command()(bootstrap)
    app.command()(join)
    app.command()(status)
    app.command("verify-update")(verify_update)
