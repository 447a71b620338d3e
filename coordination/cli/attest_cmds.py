"""CLI commands of attested compute: validate, settle-sign, settle, payouts.

    hivetune validate --run run.yaml --epoch 3 --records-dir outputs/rollouts --key-file validator.key \
        --deployment deployment.json --out outputs/verdicts-3.json        # each validator
    hivetune settle-sign --run run.yaml --period 0 --payout 1000 --verdicts v1.json --verdicts v2.json \
        --deployment deployment.json --key-file validator.key --out sig-1.json   # each validator
    hivetune settle --run run.yaml --signatures sig-1.json --signatures sig-2.json \
        --deployment deployment.json --claims-dir outputs/claims         # the aggregator
    hivetune payouts --peer 0xAbc... --claims-dir outputs/claims --deployment deployment.json
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from coordination.cli.options import (
    DeploymentOption,
    JsonOption,
    KeyFileOption,
    PeersOption,
    RpcOption,
    RunOption,
    emit,
    open_chain,
    print_table,
)
from coordination.errors import ConfigError


def validate(
    run: RunOption,
    epoch: Annotated[list[int], typer.Option(help="Epoch(s) whose receipts to audit; repeat for several.")],
    records_dir: Annotated[
        Path | None,
        typer.Option(
            help="Directory of published receipts and records (offline re-check: without the swarm's epoch board "
            "neither the canonical checkpoint nor the round can be checked; use --initial-peers to validate a run)."
        ),
    ] = None,
    initial_peers: PeersOption = None,
    key_file: KeyFileOption = None,
    deployment: DeploymentOption = None,
    rpc: RpcOption = None,
    rollout_rate: Annotated[
        float, typer.Option(help="Share of each receipt's rollouts recomputed with the model.")
    ] = 0.1,
    eval_dtype: Annotated[
        str, typer.Option(help="fp32 | bf16: dtype the policy is recomputed in (bf16 uses its calibrated tolerances).")
    ] = "fp32",
    out: Annotated[Path | None, typer.Option(help="Write the signed verdicts here (JSON).")] = None,
    confirm: Annotated[
        list[Path] | None, typer.Option(help="Another validator's report: re-check its findings (repeatable).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Audit peers' work receipts by recomputation and sign a verdict on each.

    With --deployment the validator must be registered, and verdicts are signed in the ledger's domain."""
    from coordination.chain.keys import require_private_key
    from coordination.swarm.runspec import load_run_spec
    from coordination.verify.rulings import load_reports
    from coordination.verify.validator import run_validator, validate_epochs, write_report

    if not 0.0 <= rollout_rate <= 1.0:
        raise ConfigError(f"--rollout-rate={rollout_rate}: pass a share between 0 and 1")
    if eval_dtype not in ("fp32", "bf16"):
        raise ConfigError(f"--eval-dtype={eval_dtype!r}: use fp32 or bf16")
    if (records_dir is None) == (not initial_peers):
        raise ConfigError("pass exactly one of --records-dir DIR or --initial-peers MULTIADDR")
    key = require_private_key(key_file, role="validator")
    spec = load_run_spec(run)
    spec.model.check_libraries()  # recomputing under other releases could flag an honest peer
    clients = open_chain(rpc, deployment, spec)[1] if deployment is not None else None
    with run_validator(
        spec,
        key,
        epochs=epoch,
        clients=clients,
        records_dir=records_dir,
        initial_peers=initial_peers,
        eval_dtype=eval_dtype,
        rollout_rate=rollout_rate,
    ) as (validator, receipts):
        if clients is not None:
            validator.require_registered(clients.staking)
        report = validate_epochs(validator, receipts, load_reports(confirm or []))
    if out is not None:
        write_report(report, out)
    print_validation(report, as_json)


def print_validation(report: dict, as_json: bool) -> None:
    if as_json:
        emit(True, report, "")
        return
    rows = ((v["epoch"], v["peer"], v["status"], v["kind"], v["detail"][:60]) for v in report["verdicts"])
    print_table(f"verdicts of {report['validator']}", ("epoch", "peer", "status", "kind", "detail"), rows)
    typer.echo(f"counts {report['counts']}  forward passes {report['cost']['forward_passes']}")


def payouts(
    peer: Annotated[str, typer.Option(help="The peer's Ethereum address.")],
    claims_dir: Annotated[Path, typer.Option(help="Directory of claim files written by the aggregator.")],
    deployment: DeploymentOption = None,
    rpc: RpcOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a peer's units, pending and claimed payouts, period by period (claimed/pending: with --deployment)."""
    from coordination.verify.payout import payout_rows

    clients = open_chain(rpc, deployment)[1] if deployment is not None else None
    rows = payout_rows(peer, claims_dir, ledger=clients.ledger if clients else None)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    cells = ((r["period"], r["units"], r["totalUnits"], r["amount"], r["state"]) for r in rows)
    print_table(f"payouts of {peer}", ("period", "units", "total units", "amount", "state"), cells)


def _chain_for(run: Path, deployment: Path, rpc: str | None):
    """(spec, clients): the run spec and its chain (--rpc, else the spec's chain.rpc_url)."""
    from coordination.swarm.runspec import load_run_spec

    spec = load_run_spec(run)
    return spec, open_chain(rpc, deployment, spec)[1]


def settle_sign(
    run: RunOption,
    period: Annotated[int, typer.Option(help="Payout period number.")],
    payout: Annotated[int, typer.Option(help="Payout of the period in token base units, shared by units.")],
    verdicts: Annotated[list[Path], typer.Option(help="Verdict report of a validator (repeatable).")],
    deployment: DeploymentOption,
    out: Annotated[Path, typer.Option(help="Write this validator's signed period document here.")],
    key_file: KeyFileOption = None,
    rpc: RpcOption = None,
    first_epoch: Annotated[int, typer.Option(help="First epoch the period covers.")] = 0,
    last_epoch: Annotated[int, typer.Option(help="Last epoch the period covers (inclusive).")] = 0,
    snapshot: Annotated[
        int, typer.Option(help="Stake snapshot (a past chain timestamp every validator of the period uses).")
    ] = 0,
    slash_bps: Annotated[int, typer.Option(help="Share of a cheater's stake to slash, in basis points.")] = 5_000,
    records_dir: Annotated[
        Path | None,
        typer.Option(help="Re-check every cited FRAUD evidence against these published records before co-signing."),
    ] = None,
    initial_peers: PeersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign the period's contribution table (and slashes) that the verdict reports rule, weighed by stake.

    With --records-dir or --initial-peers this validator re-runs the cited check of every FRAUD verdict
    (deterministic, under the epoch's canonical checkpoint) and counts only the FRAUD verdicts it reproduces."""
    from eth_account import Account

    from coordination.chain.eip712 import run_key
    from coordination.chain.keys import require_private_key
    from coordination.verify.payout import sign_period_document
    from coordination.verify.rulings import load_reports
    from coordination.verify.validator import run_validator

    if records_dir is not None and initial_peers:
        raise ConfigError("pass at most one of --records-dir DIR or --initial-peers MULTIADDR")
    key = require_private_key(key_file, role="validator")
    account = Account.from_key(key)
    spec, clients = _chain_for(run, deployment, rpc)
    with contextlib.ExitStack() as stack:
        recheck = None
        if records_dir is not None or initial_peers:
            epochs = list(range(first_epoch, last_epoch + 1))
            opened = run_validator(spec, key, epochs=epochs, clients=clients, records_dir=records_dir,
                                   initial_peers=initial_peers)  # fmt: skip
            validator, _ = stack.enter_context(opened)
            recheck = lambda signed, evidence: validator.confirms(signed, evidence.finding, evidence.epoch)  # noqa: E731
        doc = sign_period_document(
            account=account,
            reports=load_reports(verdicts),
            clients=clients,
            run_key=run_key(spec.run_id),
            period=period,
            first_epoch=first_epoch,
            last_epoch=last_epoch,
            payout=payout,
            snapshot=snapshot,
            slash_bps=slash_bps,
            recheck=recheck,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    peers, slashes = len(doc["table"]), len(doc["slashes"])
    payload = {"period": period, "peers": peers, "totalUnits": doc["totalUnits"], "slashes": slashes, "out": str(out)}
    text = f"signed period {period}: {peers} peers, {doc['totalUnits']} units, {slashes} slash(es) -> {out}"
    emit(as_json, payload, text)


def settle(
    run: RunOption,
    signatures: Annotated[list[Path], typer.Option(help="A validator's `settle-sign` document (repeatable).")],
    deployment: DeploymentOption,
    claims_dir: Annotated[Path, typer.Option(help="Where to write the peers' claim files.")],
    key_file: KeyFileOption = None,
    rpc: RpcOption = None,
    as_json: JsonOption = False,
) -> None:
    """Aggregator: submit the period the validators signed, write claim files, submit quorum slashes.

    Any key may pay the gas (--key-file or $HIVETUNE_KEY)."""
    from coordination.chain.keys import load_account
    from coordination.verify.payout import submit_period_documents

    sender = load_account(key_file, role="gas-paying")
    _, clients = _chain_for(run, deployment, rpc)
    docs = [json.loads(p.read_text()) for p in signatures]
    result = submit_period_documents(docs, clients=clients, sender=sender, claims_dir=claims_dir)
    emit(
        as_json,
        result,
        f"settled period {result['period']} root {result['root']} ({result['totalUnits']} units, "
        f"{len(result['signers'])} signers); {len(result['claims'])} claim files in {claims_dir}; "
        f"slashed {len(result['slashed'])}",
    )


def register(app: typer.Typer) -> None:
    """Add `validate`, `settle-sign`, `settle` and `payouts` to the `hivetune` app."""
    app.command()(validate)
    app.command("settle-sign")(settle_sign)
    app.command()(settle)
    app.command()(payouts)
