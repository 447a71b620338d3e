"""CLI: transparent evals and checkpoint promotion by stake vote.

    hivetune nominate CID --run run.yaml                 # nominated once per adapter weights hash
    hivetune fix-seed CID --run run.yaml                 # anyone, a block later: fixes the eval seed
    hivetune eval-attest CID --run run.yaml --out eval.json   # a validator: eval on that seed, sign it
    hivetune eval-verify --bundle eval.json --sample 3   # anyone: Merkle proof + recomputed verdict
    hivetune propose CID --run run.yaml --eval eval.json [--eval other-validator.json]   # a stake quorum of evals
    hivetune vote PROPOSAL for|against|abstain
    hivetune promote PROPOSAL                            # queue a succeeded vote; again after the timelock: execute
    hivetune proposals                                   # proposals decoded from their calldata, tallies

Chain options as for `hivetune stake`: --rpc (HIVETUNE_RPC), --deployment (HIVETUNE_DEPLOYMENT),
--key (HIVETUNE_KEY).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from coordination.cli.chain_cmds import DEPLOYMENT, JSON_OUT, KEY, RPC
from coordination.errors import AttestationError

RUN = typer.Option(..., "--run", help="the run spec (run.yaml); its CID is the run id")
STORE = typer.Option(None, "--store", envvar="HIVETUNE_STORE", help="checkpoint block store (default: user cache)")


def _open(rpc: str, deployment: Path, key: str | None = None):
    from coordination.chain.connect import account_from_key, connect

    w3, _, clients = connect(rpc, deployment)
    return w3, clients, (account_from_key(key) if key else None)


def _run_id(run: Path) -> str:
    from coordination.swarm.runspec import load_run_spec

    return load_run_spec(run).run_id


def nominate_cmd(
    cid: str = typer.Argument(..., help="checkpoint CID (from `hivetune checkpoint add`)"),
    run: Path = RUN,
    store: Path = STORE,
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Nominate a stored checkpoint for promotion (once per adapter weights hash); then `hivetune fix-seed`."""
    from coordination.checkpoints import CheckpointStore
    from coordination.checkpoints.weights import weights_hash_of
    from coordination.governance.promotion import nominate

    w3, clients, account = _open(rpc, deployment, key)
    weights = weights_hash_of(CheckpointStore(store), cid)
    nom = nominate(w3, clients, _run_id(run), cid, weights, sender=account)
    payload = {"cid": cid, "block": nom.block_number, "weights_hash": "0x" + weights.hex()}
    typer.echo(json.dumps(payload) if as_json else f"nominated {cid} in block {nom.block_number}")


def fix_seed_cmd(
    cid: str = typer.Argument(..., help="the nominated checkpoint CID"),
    run: Path = RUN,
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Fix the eval seed of a nomination (the hash of the block after it); anyone may call."""
    from coordination.governance.promotion import fix_seed

    w3, clients, account = _open(rpc, deployment, key)
    nom = fix_seed(w3, clients, _run_id(run), cid, sender=account)
    payload = {"cid": cid, "block": nom.block_number, "seed": nom.seed}
    typer.echo(json.dumps(payload) if as_json else f"eval seed of {cid}: {nom.seed}")


def eval_attest_cmd(
    cid: str = typer.Argument(..., help="the nominated checkpoint CID"),
    run: Path = RUN,
    n: int = typer.Option(64, "--n", help="eval samples"),
    out: Path = typer.Option(Path("eval.json"), "--out", help="eval bundle to write (records + attestation)"),
    store: Path = STORE,
    initial_peers: list[str] = typer.Option([], "--initial-peers", help="fetch the checkpoint from the swarm"),
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Validator: run the transparent eval of CID on the chain-fixed seed and sign the result."""
    from coordination.governance.promotion import nomination_seed
    from coordination.governance.transparent_eval import eval_domain, run_transparent_eval
    from coordination.swarm.runspec import load_run_spec

    spec = load_run_spec(run)
    w3, clients, account = _open(rpc, deployment, key)
    if account is None or not clients.staking.is_validator(account.address):
        raise AttestationError("eval attestations count only from registered validators: pass a validator's --key")
    seed = nomination_seed(w3, clients, spec.run_id, cid).seed
    model, tokenizer, task = load_checkpoint_model(spec, cid, store=store, initial_peers=initial_peers)
    bundle = run_transparent_eval(model, tokenizer, task, cid=cid, seed=seed, n=n)
    bundle.attest(account.key, eval_domain(w3.eth.chain_id, clients.registry.address))
    bundle.save(out)
    payload = {"cid": cid, "seed": seed, "correct": bundle.correct, "total": bundle.total, "bundle": str(out)}
    typer.echo(json.dumps(payload) if as_json else f"eval of {cid} on seed {seed}: {bundle.correct}/{bundle.total}")


def load_checkpoint_model(spec, cid: str, *, store: Path | None, initial_peers: list[str]):
    """The spec's base model with the checkpoint's LoRA adapter (fetched by CID and verified), and its task."""
    from peft import PeftModel

    from coordination.checkpoints import CheckpointStore, resolve_adapter
    from trainer.base_models import load_pinned_base
    from trainer.tasks import get_task

    blocks = CheckpointStore(store)
    dht = None
    if initial_peers:
        from coordination.swarm.dht_node import start_dht

        dht = start_dht(initial_peers=initial_peers, client_mode=True)
    try:
        adapter = resolve_adapter(cid, blocks, dht=dht, prefix=spec.run_id if dht else None)
    finally:
        if dht is not None:
            dht.shutdown()
    base, tokenizer = load_pinned_base(**spec.model.pins)  # refuses a base that is not the run's
    model = PeftModel.from_pretrained(base, str(adapter)).eval()
    return model, tokenizer, get_task(spec.task.name, **spec.task.params)


def eval_verify_cmd(
    bundle_path: Path = typer.Option(..., "--bundle", help="eval bundle JSON (from `hivetune eval-attest`)"),
    sample: int = typer.Option(..., "--sample", help="index of the sample to check"),
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    offline: bool = typer.Option(False, "--offline", help="skip checking the signers against the chain"),
    base: str | None = typer.Option(
        None, "--base", help="the run's base model: instruct bases render chat prompts (default: raw task prompts)"
    ),
    as_json: bool = JSON_OUT,
) -> None:
    """Prove sample N is in the signed eval (Merkle proof) and recompute its verdict from the task."""
    from coordination.governance.transparent_eval import EvalBundle, attestation_signers, eval_domain, verify_sample
    from trainer.tasks import get_task

    bundle = EvalBundle.load(bundle_path)
    signers = []
    if not offline:
        w3, clients, _ = _open(rpc, deployment)
        signers = attestation_signers(bundle, eval_domain(w3.eth.chain_id, clients.registry.address))
        outsiders = [s for s in signers if not clients.staking.is_validator(s)]
        if outsiders:
            raise AttestationError(f"eval bundle signed by non-validators {outsiders}: do not trust its score")
    name, _, params = bundle.task.partition(":")
    tokenizer = None
    if base is not None:
        from trainer.models import load_tokenizer

        tokenizer = load_tokenizer(base)
    check = verify_sample(bundle, sample, get_task(name, **json.loads(params or "{}")), tokenizer=tokenizer)
    payload = {
        "sample": sample,
        "ok": check.ok,
        "in_commitment": check.in_commitment,
        "prompt_matches": check.prompt_matches,
        "verdict_matches": check.verdict_matches,
        "verdict": check.record.verdict,
        "signers": signers,
    }
    if as_json:
        typer.echo(json.dumps(payload))
    else:
        typer.echo(f"prompt: {check.record.prompt.strip()}\ntrace:  {check.record.completion}")
        typer.echo(f"verdict {check.record.verdict}; proof ok {check.in_commitment}; recomputed ok {check.ok}")
    if not check.ok:
        raise typer.Exit(1)


def propose_cmd(
    cid: str = typer.Argument(..., help="the nominated checkpoint CID"),
    run: Path = RUN,
    evals: list[Path] = typer.Option(..., "--eval", help="eval bundle(s) from validators (same seed and records)"),
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Propose promoting CID with its eval attestations (refused when missing, forged, mismatched, or signed by
    less than a validator stake quorum); records the eval score on chain first."""
    from coordination.governance.promotion import propose_promotion

    bundle = merge_bundles(evals)
    w3, clients, account = _open(rpc, deployment, key)
    pid = propose_promotion(w3, clients, run_id=_run_id(run), cid=cid, bundle=bundle, sender=account)
    payload = {"proposal": str(pid), "cid": cid, "correct": bundle.correct, "total": bundle.total}
    typer.echo(json.dumps(payload) if as_json else f"proposal {pid}: promote {cid} ({bundle.correct}/{bundle.total})")


def merge_bundles(paths: list[Path]):
    """One bundle carrying every validator's attestation; all must commit to the same records."""
    from coordination.governance.transparent_eval import EvalBundle

    bundles = [EvalBundle.load(p) for p in paths]
    first = bundles[0]
    for other, path in zip(bundles[1:], paths[1:], strict=True):
        if (other.cid, other.seed, other.root) != (first.cid, first.seed, first.root):
            raise AttestationError(
                f"{path} evaluates {other.cid} on seed {other.seed} with other records than {paths[0]}: "
                "validators disagree; re-run the eval or drop the outlier"
            )
        first.attestations.extend(other.attestations)
    return first


def vote_cmd(
    proposal: str = typer.Argument(..., help="proposal id (from `hivetune propose` or `hivetune proposals`)"),
    support: str = typer.Argument(..., help="for | against | abstain"),
    reason: str = typer.Option("", help="optional reason, stored on chain"),
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
) -> None:
    """Vote with your stake at the proposal's snapshot (no stake at the snapshot = zero weight)."""
    from coordination.governance.promotion import vote

    _, clients, account = _open(rpc, deployment, key)
    weight = clients.staking.get_past_votes(account.address, clients.governor.proposal_snapshot(int(proposal)))
    vote(clients, int(proposal), support, sender=account, reason=reason)
    typer.echo(f"voted {support} on {proposal} with weight {weight}")


def promote_cmd(
    proposal: str = typer.Argument(..., help="proposal id"),
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
) -> None:
    """Queue a succeeded proposal in the timelock; run again after the delay to execute it."""
    from coordination.chain.governance import ProposalState
    from coordination.governance.promotion import promote

    w3, clients, account = _open(rpc, deployment, key)
    receipt = promote(w3, clients, int(proposal), sender=account)
    state = clients.governor.state(int(proposal))
    if state == ProposalState.QUEUED:
        eta = clients.governor.proposal_eta(int(proposal))
        typer.echo(f"queued in the timelock; executable after timestamp {eta} (run `hivetune promote` again)")
    else:
        typer.echo(f"executed (tx {receipt['transactionHash'].hex()})")


def proposals_cmd(rpc: str = RPC, deployment: Path = DEPLOYMENT, as_json: bool = JSON_OUT) -> None:
    """Proposals as their calldata decodes (never their description), with tallies."""
    from coordination.governance.promotion import proposals

    w3, clients, _ = _open(rpc, deployment)
    rows = proposal_rows(proposals(w3, clients))
    if as_json:
        typer.echo(json.dumps(rows))
        return
    print_proposal_table(rows)


def proposal_rows(infos) -> list[dict]:
    """One row per proposal, every field decoded from the calldata and checked against the registry."""
    rows = []
    for info in infos:
        facts = info.facts or {}
        rows.append(
            {
                "proposal": str(info.proposal_id),
                "state": info.state.name.lower(),
                "executes": "; ".join(a.summary() for a in info.actions),
                "cid": facts.get("cid"),
                "eval": f"{facts['correct']}/{facts['total']}" if facts.get("eval_recorded") else None,
                "eval_digest": facts.get("eval_digest"),
                "nominated": facts.get("nominated"),
                "eval_recorded": facts.get("eval_recorded"),
                "for": info.votes_for,
                "against": info.votes_against,
                "abstain": info.votes_abstain,
            }
        )
    return rows


def print_proposal_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    columns = ("proposal", "state", "executes", "nominated", "eval", "for", "against", "abstain")
    table = Table(title="promotion proposals")
    for col in columns:
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(*(str(r[c]) for c in columns))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the governance commands to the `hivetune` app."""
    app.command("nominate")(nominate_cmd)
    app.command("fix-seed")(fix_seed_cmd)
    app.command("eval-attest")(eval_attest_cmd)
    app.command("eval-verify")(eval_verify_cmd)
    app.command("propose")(propose_cmd)
    app.command("vote")(vote_cmd)
    app.command("promote")(promote_cmd)
    app.command("proposals")(proposals_cmd)
