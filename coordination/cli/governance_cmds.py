"""CLI: transparent evals and checkpoint promotion by stake vote.

    hivetune nominate CID --run run.yaml                 # nominated once per adapter weights hash
    hivetune fix-seed CID --run run.yaml                 # anyone, a block later: fixes the eval seed
    hivetune eval-attest CID --run run.yaml --out eval.json   # a validator: eval on that seed, sign it
    hivetune eval-verify --bundle eval.json --sample 3   # anyone: Merkle proof + recomputed verdict
    hivetune propose CID --run run.yaml --eval eval.json [--eval other-validator.json]   # a stake quorum of evals
    hivetune vote PROPOSAL for|against|abstain
    hivetune promote PROPOSAL                            # queue a succeeded vote; again after the timelock: execute
    hivetune proposals                                   # proposals decoded from their calldata, tallies

Chain options as for `hivetune stake` (`coordination.cli.options`): --rpc (HIVETUNE_RPC), --deployment
(HIVETUNE_DEPLOYMENT), --key-file (or HIVETUNE_KEY). Eval bundles, promotion facts and the proposal
rows are library code (`coordination.governance.transparent_eval`, `.promotion`); these are wrappers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coordination.cli.options import (
    DEPLOYMENT_FILE,
    DeploymentOption,
    JsonOption,
    KeyFileOption,
    PeersOption,
    RpcOption,
    RunOption,
    StoreOption,
    emit,
    open_chain,
    open_signed_chain,
    print_table,
)
from coordination.errors import AttestationError

CidArgument = Annotated[str, typer.Argument(help="the nominated checkpoint CID")]
ProposalArgument = Annotated[str, typer.Argument(help="proposal id (from `hivetune propose` or `hivetune proposals`)")]


def _run_id(run: Path) -> str:
    from coordination.swarm.runspec import load_run_spec

    return load_run_spec(run).run_id


def nominate(
    cid: Annotated[str, typer.Argument(help="checkpoint CID (from `hivetune checkpoint add`)")],
    run: RunOption,
    store: StoreOption = None,
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Nominate a stored checkpoint for promotion (once per adapter weights hash); then `hivetune fix-seed`."""
    from coordination.checkpoints import CheckpointStore
    from coordination.checkpoints.weights import weights_hash_of
    from coordination.governance import promotion

    w3, clients, account = open_signed_chain(rpc, deployment, key_file)
    weights = weights_hash_of(CheckpointStore(store), cid)
    nom = promotion.nominate(w3, clients, _run_id(run), cid, weights, sender=account)
    payload = {"cid": cid, "block": nom.block_number, "weights_hash": "0x" + weights.hex()}
    emit(as_json, payload, f"nominated {cid} in block {nom.block_number}")


def fix_seed(
    cid: CidArgument,
    run: RunOption,
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fix the eval seed of a nomination (the hash of the block after it); anyone may call."""
    from coordination.governance import promotion

    w3, clients, account = open_signed_chain(rpc, deployment, key_file)
    nom = promotion.fix_seed(w3, clients, _run_id(run), cid, sender=account)
    payload = {"cid": cid, "block": nom.block_number, "seed": nom.seed}
    emit(as_json, payload, f"eval seed of {cid}: {nom.seed}")


def eval_attest(
    cid: CidArgument,
    run: RunOption,
    n: Annotated[int, typer.Option("--n", help="eval samples")] = 64,
    out: Annotated[Path, typer.Option("--out", help="eval bundle to write (records + attestation)")] = Path(
        "eval.json"
    ),
    store: StoreOption = None,
    initial_peers: PeersOption = None,
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validator: run the transparent eval of CID on the chain-fixed seed and sign the result."""
    from coordination.governance.promotion import nomination_seed
    from coordination.governance.transparent_eval import eval_domain, load_checkpoint_model, run_transparent_eval
    from coordination.swarm.runspec import load_run_spec

    spec = load_run_spec(run)
    spec.model.check_libraries()  # the transparent eval must score as every other validator's does
    w3, clients, account = open_signed_chain(rpc, deployment, key_file)
    if not clients.staking.is_validator(account.address):
        raise AttestationError(
            f"eval attestations count only from registered validators: {account.address} is not one; "
            "pass a validator's --key-file"
        )
    seed = nomination_seed(w3, clients, spec.run_id, cid).seed
    model, tokenizer, task = load_checkpoint_model(spec, cid, store=store, initial_peers=initial_peers or [])
    bundle = run_transparent_eval(model, tokenizer, task, cid=cid, seed=seed, n=n)
    bundle.attest(account.key, eval_domain(w3.eth.chain_id, clients.registry.address))
    bundle.save(out)
    payload = {"cid": cid, "seed": seed, "correct": bundle.correct, "total": bundle.total, "bundle": str(out)}
    emit(as_json, payload, f"eval of {cid} on seed {seed}: {bundle.correct}/{bundle.total}")


def eval_verify(
    bundle_path: Annotated[Path, typer.Option("--bundle", help="eval bundle JSON (from `hivetune eval-attest`)")],
    sample: Annotated[int, typer.Option("--sample", help="index of the sample to check")],
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    offline: Annotated[bool, typer.Option("--offline", help="skip checking the signers against the chain")] = False,
    base: Annotated[
        str | None,
        typer.Option(help="the run's base model: instruct bases render chat prompts (default: raw task prompts)"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Prove sample N is in the signed eval (Merkle proof) and recompute its verdict from the task."""
    from coordination.governance.transparent_eval import (
        EvalBundle,
        bundle_task,
        eval_domain,
        validator_signers,
        verify_sample,
    )

    bundle = EvalBundle.load(bundle_path)
    signers = []
    if not offline:
        w3, clients = open_chain(rpc, deployment)
        domain = eval_domain(w3.eth.chain_id, clients.registry.address)
        signers = validator_signers(bundle, domain, clients.staking.is_validator)
    tokenizer = None
    if base is not None:
        from trainer.models import load_tokenizer

        tokenizer = load_tokenizer(base)
    check = verify_sample(bundle, sample, bundle_task(bundle), tokenizer=tokenizer)
    payload = {
        "sample": sample,
        "ok": check.ok,
        "in_commitment": check.in_commitment,
        "prompt_matches": check.prompt_matches,
        "verdict_matches": check.verdict_matches,
        "verdict": check.record.verdict,
        "signers": signers,
    }
    emit(
        as_json,
        payload,
        f"prompt: {check.record.prompt.strip()}\ntrace:  {check.record.completion}\n"
        f"verdict {check.record.verdict}; proof ok {check.in_commitment}; recomputed ok {check.ok}",
    )
    if not check.ok:
        raise typer.Exit(1)


def propose(
    cid: CidArgument,
    run: RunOption,
    evals: Annotated[
        list[Path], typer.Option("--eval", help="eval bundle(s) from validators (same seed and records)")
    ],
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Propose promoting CID with its eval attestations (refused when missing, forged, mismatched, or signed by
    less than a validator stake quorum); records the eval score on chain first."""
    from coordination.governance.promotion import propose_promotion
    from coordination.governance.transparent_eval import merge_bundles

    bundle = merge_bundles(evals)
    w3, clients, account = open_signed_chain(rpc, deployment, key_file)
    pid = propose_promotion(w3, clients, run_id=_run_id(run), cid=cid, bundle=bundle, sender=account)
    payload = {"proposal": str(pid), "cid": cid, "correct": bundle.correct, "total": bundle.total}
    emit(as_json, payload, f"proposal {pid}: promote {cid} ({bundle.correct}/{bundle.total})")


def vote(
    proposal: ProposalArgument,
    support: Annotated[str, typer.Argument(help="for | against | abstain")],
    reason: Annotated[str, typer.Option(help="optional reason, stored on chain")] = "",
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Vote with your stake at the proposal's snapshot (no stake at the snapshot = zero weight)."""
    from coordination.governance import promotion

    _, clients, account = open_signed_chain(rpc, deployment, key_file)
    weight = clients.staking.get_past_votes(account.address, clients.governor.proposal_snapshot(int(proposal)))
    promotion.vote(clients, int(proposal), support, sender=account, reason=reason)
    payload = {"proposal": proposal, "support": support, "weight": weight}
    emit(as_json, payload, f"voted {support} on {proposal} with weight {weight}")


def promote(
    proposal: ProposalArgument,
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a succeeded proposal in the timelock; run again after the delay to execute it."""
    from coordination.chain.governance import ProposalState
    from coordination.governance import promotion

    w3, clients, account = open_signed_chain(rpc, deployment, key_file)
    receipt = promotion.promote(w3, clients, int(proposal), sender=account)
    state = clients.governor.state(int(proposal))
    tx = "0x" + bytes(receipt["transactionHash"]).hex()
    payload = {"proposal": proposal, "state": state.name.lower(), "tx": tx}
    if state == ProposalState.QUEUED:
        payload["eta"] = eta = clients.governor.proposal_eta(int(proposal))
        text = f"queued in the timelock; executable after timestamp {eta} (run `hivetune promote` again)"
    else:
        text = f"executed (tx {tx})"
    emit(as_json, payload, text)


def proposals(
    rpc: RpcOption = None, deployment: DeploymentOption = DEPLOYMENT_FILE, as_json: JsonOption = False
) -> None:
    """Proposals as their calldata decodes (never their description), with tallies."""
    from coordination.governance import promotion

    w3, clients = open_chain(rpc, deployment)
    rows = promotion.proposal_rows(promotion.proposals(w3, clients))
    if as_json:
        emit(True, rows, "")
        return
    columns = promotion.PROPOSAL_COLUMNS
    print_table("promotion proposals", columns, ([r[c] for c in columns] for r in rows))


def register(app: typer.Typer) -> None:
    """Add the governance commands to the `hivetune` app."""
    app.command("nominate")(nominate)
    app.command("fix-seed")(fix_seed)
    app.command("eval-attest")(eval_attest)
    app.command("eval-verify")(eval_verify)
    app.command("propose")(propose)
    app.command("vote")(vote)
    app.command("promote")(promote)
    app.command("proposals")(proposals)
