"""CLI commands of attested compute: validate, settle-sign, settle, rewards.

    hivetune validate --run run.yaml --epoch 3 --records-dir outputs/rollouts --key-file validator.key \
        --deployment deployment.json --out outputs/verdicts-3.json        # each validator
    hivetune settle-sign --run run.yaml --period 0 --reward 1000 --verdicts v1.json --verdicts v2.json \
        --deployment deployment.json --key-file validator.key --out sig-1.json   # each validator
    hivetune settle --run run.yaml --signatures sig-1.json --signatures sig-2.json \
        --deployment deployment.json --claims-dir outputs/claims         # the aggregator
    hivetune rewards --peer 0xAbc... --claims-dir outputs/claims --deployment deployment.json
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Annotated

import typer

from coordination.chain.connect import DEFAULT_RPC
from coordination.errors import ConfigError

KEY_ENV = "HIVETUNE_VALIDATOR_KEY"


def read_key(key_file: Path | None) -> str:
    """The validator's private key from --key-file or $HIVETUNE_VALIDATOR_KEY."""
    if key_file is not None:
        if not key_file.is_file():
            raise ConfigError(f"key file {key_file} not found: pass --key-file PATH holding a 0x-hex private key")
        return key_file.read_text().strip()
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].strip()
    raise ConfigError(f"no validator key: pass --key-file PATH or set {KEY_ENV}")


def connect_chain(deployment: Path | None, rpc: str | None, spec):
    """(clients, chain_id) from a deployment file, or (None, chain id of the spec) without one.

    Goes through `coordination.chain.connect.connect`, so the chain id and the contracts' code are checked.
    """
    if deployment is None:
        return None, (spec.chain.chain_id if spec.chain else 31337)
    from coordination.chain.connect import connect

    url = rpc or (spec.chain.rpc_url if spec.chain else DEFAULT_RPC)
    _, dep, clients = connect(url, deployment)
    return clients, dep.chain_id


def attest_domain_for(clients, chain_id: int) -> dict:
    from coordination.attest.typed_data import attest_domain

    return clients.ledger.domain().as_dict() if clients else attest_domain(chain_id=chain_id)


def validate(
    run: Annotated[Path, typer.Option(help="run.yaml of the run to validate.")],
    epoch: Annotated[list[int], typer.Option(help="Epoch(s) whose receipts to audit; repeat for several.")],
    records_dir: Annotated[
        Path | None,
        typer.Option(
            help="Directory of published receipts and records (offline re-check: without the swarm's epoch board "
            "neither the canonical checkpoint nor the round can be checked; use --initial-peers to validate a run)."
        ),
    ] = None,
    initial_peers: Annotated[
        list[str] | None, typer.Option(help="Multiaddr of a swarm peer (repeatable): read receipts from the DHT.")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option(help=f"File with the validator's 0x private key (or ${KEY_ENV}).")
    ] = None,
    deployment: Annotated[
        Path | None, typer.Option(help="deployment.json: check stake registration, use the ledger domain.")
    ] = None,
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC URL (default: the run spec's chain.rpc_url).")] = None,
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
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Audit peers' work receipts by recomputation and sign a verdict on each."""
    from coordination.swarm.runspec import load_run_spec
    from coordination.verify.aggregate import load_reports
    from coordination.verify.validate_run import facts_for_run, validate_epochs, write_report
    from coordination.verify.validator import Validator

    if not 0.0 <= rollout_rate <= 1.0:
        raise ConfigError(f"--rollout-rate={rollout_rate}: pass a share between 0 and 1")
    if eval_dtype not in ("fp32", "bf16"):
        raise ConfigError(f"--eval-dtype={eval_dtype!r}: use fp32 or bf16")
    if (records_dir is None) == (not initial_peers):
        raise ConfigError("pass exactly one of --records-dir DIR or --initial-peers MULTIADDR")
    spec = load_run_spec(run)
    clients, chain_id = connect_chain(deployment, rpc, spec)
    key = read_key(key_file)
    with receipt_source(spec, records_dir, initial_peers, epoch) as (receipts, fetch, dht):
        # every receipt is audited under its epoch's canonical checkpoint (from the swarm's epoch board) and paid
        # only if its gradient entered the round; checkpoints come from the local store, else from the swarm
        board = None
        if dht is not None:
            from coordination.swarm.epoch_board import EpochBoard

            board = EpochBoard(dht=dht, run_id=spec.run_id)
        facts = facts_for_run(
            spec, domain=attest_domain_for(clients, chain_id), dht=dht, board=board, eval_dtype=eval_dtype
        )
        validator = Validator(private_key=key, facts=facts, fetch=fetch, rollout_rate=rollout_rate)
        if clients is not None:
            validator.require_registered(clients.staking)
        report = validate_epochs(validator, receipts, load_reports(confirm or []))
    if out is not None:
        write_report(report, out)
    print_validation(report, as_json)


@contextlib.contextmanager
def _validator(spec, clients, key: str, records_dir, initial_peers, epochs, *, eval_dtype: str = "fp32"):
    """A Validator over the run's published records (directory or swarm), as `validate` builds it."""
    from coordination.swarm.epoch_board import EpochBoard
    from coordination.verify.validate_run import facts_for_run
    from coordination.verify.validator import Validator

    with receipt_source(spec, records_dir, initial_peers, epochs) as (_, fetch, dht):
        board = EpochBoard(dht=dht, run_id=spec.run_id) if dht is not None else None
        facts = facts_for_run(spec, domain=attest_domain_for(clients, 0), dht=dht, board=board, eval_dtype=eval_dtype)
        yield Validator(private_key=key, facts=facts, fetch=fetch, rollout_rate=1.0)


@contextlib.contextmanager
def receipt_source(spec, records_dir: Path | None, initial_peers: list[str] | None, epochs: list[int]):
    """({epoch: [SignedReceipt]}, record fetcher, dht or None) from a local directory or from the swarm's DHT."""
    if records_dir is not None:
        from coordination.attest.rollout_store import RolloutDirectory
        from coordination.chain.signing import run_key

        store = RolloutDirectory(records_dir)
        yield {e: store.receipts(run_key(spec.run_id).hex(), e) for e in epochs}, store.fetch, None
        return
    from coordination.attest.dht_receipts import fetch_receipts, protect
    from coordination.attest.p2p_serving import P2PRecordFetcher
    from coordination.swarm.dht_node import start_dht

    dht = start_dht(initial_peers=initial_peers, client_mode=True)
    try:
        protect(dht)  # check owner signatures of receipt (and epoch board) entries
        published = {e: fetch_receipts(dht, spec.run_id, e) for e in epochs}
        every = [p for ps in published.values() for p in ps]
        fetch = P2PRecordFetcher.from_published(dht, prefix=spec.run_id, published=every)
        yield {e: [p.signed for p in ps] for e, ps in published.items()}, fetch, dht
    finally:
        dht.shutdown()


def print_validation(report: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"verdicts of {report['validator']}")
    for column in ("epoch", "peer", "status", "kind", "detail"):
        table.add_column(column)
    for v in report["verdicts"]:
        table.add_row(str(v["epoch"]), v["peer"], v["status"], v["kind"], v["detail"][:60])
    console = Console()
    console.print(table)
    console.print(f"counts {report['counts']}  forward passes {report['cost']['forward_passes']}")


def rewards(
    peer: Annotated[str, typer.Option(help="The peer's Ethereum address.")],
    claims_dir: Annotated[Path, typer.Option(help="Directory of claim files written by the aggregator.")],
    deployment: Annotated[Path | None, typer.Option(help="deployment.json: look up claimed/pending on chain.")] = None,
    rpc: Annotated[str, typer.Option(help="JSON-RPC URL.")] = DEFAULT_RPC,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a peer's units, pending and claimed rewards, period by period."""
    from coordination.verify.reward_status import reward_rows

    clients = None
    if deployment is not None:
        from coordination.chain.connect import connect

        _, _, clients = connect(rpc, deployment)  # checks the chain id and the contracts' code
    rows = reward_rows(peer, claims_dir, ledger=clients.ledger if clients else None)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"rewards of {peer}")
    for column in ("period", "units", "total units", "amount", "state"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["period"]), str(r["units"]), str(r["totalUnits"]), str(r["amount"]), r["state"])
    Console().print(table)


def _chain_for(run: Path, deployment: Path, rpc: str | None):
    from coordination.swarm.runspec import load_run_spec

    spec = load_run_spec(run)
    clients, _ = connect_chain(deployment, rpc, spec)
    return spec, clients


def settle_sign(
    run: Annotated[Path, typer.Option(help="run.yaml of the run.")],
    period: Annotated[int, typer.Option(help="Reward period number.")],
    reward: Annotated[int, typer.Option(help="Reward of the period in token base units.")],
    verdicts: Annotated[list[Path], typer.Option(help="Verdict report of a validator (repeatable).")],
    deployment: Annotated[Path, typer.Option(help="deployment.json of the contracts.")],
    out: Annotated[Path, typer.Option(help="Write this validator's signed period document here.")],
    key_file: Annotated[Path | None, typer.Option(help=f"Validator key file (or ${KEY_ENV}).")] = None,
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC URL (default: the run spec's).")] = None,
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
    initial_peers: Annotated[
        list[str] | None,
        typer.Option(help="Multiaddr of a swarm peer (repeatable): re-check cited FRAUD evidence from the swarm."),
    ] = None,
) -> None:
    """Sign the period's contribution table (and slashes) that the verdict reports rule, weighed by stake.

    With --records-dir or --initial-peers this validator re-runs the cited check of every FRAUD verdict
    (deterministic, under the epoch's canonical checkpoint) and counts only the FRAUD verdicts it reproduces."""
    from eth_account import Account

    from coordination.chain.signing import run_key
    from coordination.verify.aggregate import load_reports
    from coordination.verify.period_files import sign_period_document

    if records_dir is not None and initial_peers:
        raise ConfigError("pass at most one of --records-dir DIR or --initial-peers MULTIADDR")
    spec, clients = _chain_for(run, deployment, rpc)
    key = read_key(key_file)
    account = Account.from_key(key)
    with contextlib.ExitStack() as stack:
        recheck = None
        if records_dir is not None or initial_peers:
            epochs = list(range(first_epoch, last_epoch + 1))
            validator = stack.enter_context(_validator(spec, clients, key, records_dir, initial_peers, epochs))
            recheck = lambda signed, evidence: validator.confirms(signed, evidence.finding, evidence.epoch)  # noqa: E731
        doc = sign_period_document(
            account=account,
            reports=load_reports(verdicts),
            clients=clients,
            run_key=run_key(spec.run_id),
            period=period,
            first_epoch=first_epoch,
            last_epoch=last_epoch,
            reward=reward,
            snapshot=snapshot,
            slash_bps=slash_bps,
            recheck=recheck,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    typer.echo(
        f"signed period {period}: {len(doc['table'])} peers, {doc['totalUnits']} units, "
        f"{len(doc['slashes'])} slash(es) -> {out}"
    )


def settle(
    run: Annotated[Path, typer.Option(help="run.yaml of the run.")],
    signatures: Annotated[list[Path], typer.Option(help="A validator's `settle-sign` document (repeatable).")],
    deployment: Annotated[Path, typer.Option(help="deployment.json of the contracts.")],
    claims_dir: Annotated[Path, typer.Option(help="Where to write the peers' claim files.")],
    key_file: Annotated[Path | None, typer.Option(help=f"Key that pays the gas (or ${KEY_ENV}).")] = None,
    rpc: Annotated[str | None, typer.Option(help="JSON-RPC URL (default: the run spec's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Aggregator: submit the period the validators signed, write claim files, submit quorum slashes."""
    from eth_account import Account

    from coordination.verify.period_files import submit_period_documents

    _, clients = _chain_for(run, deployment, rpc)
    docs = [json.loads(p.read_text()) for p in signatures]
    result = submit_period_documents(
        docs, clients=clients, sender=Account.from_key(read_key(key_file)), claims_dir=claims_dir
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(
            f"settled period {result['period']} root {result['root']} ({result['totalUnits']} units, "
            f"{len(result['signers'])} signers); {len(result['claims'])} claim files in {claims_dir}; "
            f"slashed {len(result['slashed'])}"
        )


def register(app: typer.Typer) -> None:
    """Add `validate`, `settle-sign`, `settle` and `rewards` to the `hivetune` app."""
    app.command()(validate)
    app.command("settle-sign")(settle_sign)
    app.command()(settle)
    app.command()(rewards)
