"""Checkpoint promotion by stake vote: nominate → fix seed → transparent eval → record → propose → vote →
queue → (timelock delay) → execute.

1. `nominate(w3, clients, run_id, cid, weights_hash)` records the nomination on `CheckpointRegistry`,
   deduplicated by the adapter weights' content hash (`coordination.checkpoints.weights`).
2. `fix_seed` (anyone, from the next block on) fixes the eval seed to the hash of the block after the
   nomination block; `nomination_seed` reads it: `eval_seed(chain seed, run, cid)`.
3. Validators run the eval on that seed and sign it (`transparent_eval`).
4. `propose_promotion` refuses a bundle whose attestations are missing, forged, for another CID or seed,
   or signed by less than a validator stake quorum; records the score on chain with the validators'
   signatures (`recordEval`, which checks the quorum again) and proposes
   `CheckpointRegistry.promote(run, cid, digest)`. The description is free text for humans only.
5. Stakers `vote` with their stake at the proposal snapshot. `promote` queues a succeeded proposal in
   the RunTimelock, and executes it once the timelock delay has passed.

What a proposal does is always read from its calldata (`ProposalInfo.actions`, `ProposalInfo.facts`),
never from its description, so a description cannot pass one checkpoint off as another.

    nom = nominate(w3, clients, run_id, cid, weights_hash(adapter_dir), sender=operator)
    nom = fix_seed(w3, clients, run_id, cid, sender=anyone)
    pid = propose_promotion(w3, clients, run_id=run_id, cid=cid, bundle=bundle, sender=staker)
    vote(clients, pid, "for", sender=staker); ...; promote(w3, clients, pid, sender=anyone)  # queue
    ...timelock delay...; promote(w3, clients, pid, sender=anyone)                          # execute
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from coordination.chain.eip712 import order_by_signer, run_key
from coordination.chain.governance import Action, Proposal, ProposalState, Support, decode_actions, promotion_proposal
from coordination.errors import ChainError
from coordination.governance.transparent_eval import EvalBundle, check_attestations, eval_domain, eval_seed

SEED_WAIT_S = 60.0


@dataclass(frozen=True)
class Nomination:
    cid: str
    block_number: int
    seed: int | None  # None until `fix_seed`
    weights_hash: bytes


def nomination_seed(w3, clients, run_id: str, cid: str) -> Nomination:
    """The chain-fixed eval seed of a nominated checkpoint (ChainError if not nominated or not fixed yet)."""
    nom = clients.registry.nomination(run_id, cid)
    chain_seed = bytes(nom.seed)
    if chain_seed == bytes(32):
        raise ChainError(f"the eval seed of {cid} is not fixed yet: run `hivetune fix-seed {cid}` (anyone may)")
    return Nomination(cid, nom.block_number, eval_seed(chain_seed, run_key(run_id), cid), bytes(nom.weights_hash))


def nominate(w3, clients, run_id: str, cid: str, weights_hash: bytes, *, sender) -> Nomination:
    """Nominate `cid` (whose adapter weights hash to `weights_hash`); its seed is fixed by `fix_seed`."""
    receipt = clients.registry.nominate(run_id, cid, weights_hash, sender=sender)
    return Nomination(cid, receipt["blockNumber"], None, bytes(weights_hash))


def fix_seed(w3, clients, run_id: str, cid: str, *, sender, wait_s: float = SEED_WAIT_S) -> Nomination:
    """Fix `cid`'s eval seed once the block after its nomination exists (on a dev chain, mine it)."""
    from coordination.chain.transact import is_in_process

    block = clients.registry.nomination_block(run_id, cid)
    deadline = time.monotonic() + wait_s
    while w3.eth.block_number <= block:
        if is_in_process(w3) or _is_dev_chain(w3):
            from coordination.chain.clock import advance_time

            advance_time(w3, 1)
        elif time.monotonic() > deadline:
            raise ChainError(f"no block after {block} within {wait_s:.0f} s: retry `hivetune fix-seed {cid}` later")
        else:
            time.sleep(1.0)
    clients.registry.fix_seed(run_id, cid, sender=sender)
    return nomination_seed(w3, clients, run_id, cid)


def _is_dev_chain(w3) -> bool:
    return w3.eth.chain_id == 31337


def propose_promotion(w3, clients, *, run_id: str, cid: str, bundle: EvalBundle, sender, description: str = "") -> int:
    """Check the eval attestations against the chain (a validator stake quorum at the last second), record the
    eval score, propose; returns the proposal id."""
    from coordination.chain.clock import chain_now

    nomination = nomination_seed(w3, clients, run_id, cid)
    snapshot = chain_now(w3) - 1
    named = [a.get("validator", "0x" + "00" * 20) for a in bundle.attestations]
    check_attestations(
        bundle,
        cid=cid,
        seed=nomination.seed,
        domain=eval_domain(w3.eth.chain_id, clients.registry.address),
        stakes=clients.staking.validator_stakes_at(named, snapshot) if named else {},
        required=clients.staking.required_quorum_stake_at(snapshot),
    )
    if not clients.registry.eval_recorded(run_id, cid, bundle.digest):
        signed = [(a["validator"], bytes.fromhex(str(a["signature"]).removeprefix("0x"))) for a in bundle.attestations]
        signatures = order_by_signer(signed)
        args = (bundle.correct, bundle.total, bundle.root, snapshot, signatures)
        clients.registry.record_eval(run_id, cid, *args, sender=sender)
    if not clients.registry.eval_recorded(run_id, cid, bundle.digest):  # the registry derived another digest
        raise ChainError(f"the registry's eval digest of {cid} differs from the bundle's: the seed does not match")
    text = description or f"Promote checkpoint {cid}: eval {bundle.correct}/{bundle.total} on seed {bundle.seed}"
    proposal = promotion_proposal(clients.registry.address, run_id, cid, bundle.digest, text)
    return clients.governor.propose(proposal, sender=sender)


SUPPORT = {"for": Support.FOR, "against": Support.AGAINST, "abstain": Support.ABSTAIN}


def vote(clients, proposal_id: int, support: str, *, sender, reason: str = ""):
    """Cast `for|against|abstain` with the sender's stake at the proposal snapshot."""
    if support not in SUPPORT:
        raise ValueError(f"vote must be one of for|against|abstain, got {support!r}")
    return clients.governor.cast_vote(proposal_id, SUPPORT[support], sender=sender, reason=reason)


@dataclass(frozen=True)
class ProposalInfo:
    proposal_id: int
    proposal: Proposal
    state: ProposalState
    votes_for: int
    votes_against: int
    votes_abstain: int
    actions: list[Action]
    facts: dict | None  # what a promote/rollback call does, checked against the registry; None otherwise


def action_facts(clients, action: Action) -> dict | None:
    """The decoded call of a promotion or rollback, with what the registry knows of its CID."""
    if action.function == "promote":
        run, cid, digest = action.args["runId"], action.args["cid"], bytes(action.args["evalDigest"])
        nominated = True
        try:
            clients.registry.nomination(run, cid)
        except ChainError:
            nominated = False
        result = clients.registry.eval_result(run, cid, digest) if nominated else None
        recorded = bool(result and result.recorded)
        return {
            "action": "promote",
            "run_id": "0x" + bytes(run).hex(),
            "cid": cid,
            "eval_digest": "0x" + digest.hex(),
            "nominated": nominated,
            "eval_recorded": recorded,
            "correct": result.correct if recorded else None,
            "total": result.total if recorded else None,
        }
    if action.function == "rollback":
        return {
            "action": "rollback",
            "run_id": "0x" + bytes(action.args["runId"]).hex(),
            "index": action.args["index"],
        }
    return None


def _created_events(w3, clients) -> list:
    event = clients.governor.contract.events.ProposalCreated
    return event.get_logs(from_block=0)


def proposals(w3, clients) -> list[ProposalInfo]:
    """Every proposal on the governor, with its state, tallies and decoded calls."""
    out = []
    for ev in _created_events(w3, clients):
        a = ev["args"]
        proposal = Proposal(
            tuple(a["targets"]), tuple(a["values"]), tuple(bytes(c) for c in a["calldatas"]), a["description"]
        )
        pid = a["proposalId"]
        votes = clients.governor.proposal_votes(pid)
        actions = decode_actions(*proposal.as_args(), registry_address=clients.registry.address)
        facts = action_facts(clients, actions[0]) if len(actions) == 1 else None
        out.append(
            ProposalInfo(
                pid, proposal, clients.governor.state(pid), votes.for_, votes.against, votes.abstain, actions, facts
            )
        )
    return out


def find_proposal(w3, clients, proposal_id: int) -> ProposalInfo:
    for info in proposals(w3, clients):
        if info.proposal_id == proposal_id:
            return info
    raise ChainError(
        f"no proposal {proposal_id} on governor {clients.governor.address}: list them with `hivetune proposals`"
    )


def promote(w3, clients, proposal_id: int, *, sender):
    """Queue a succeeded proposal in the timelock, or execute a queued one whose delay has passed."""
    info = find_proposal(w3, clients, proposal_id)
    if info.state == ProposalState.SUCCEEDED:
        return clients.governor.queue(info.proposal, sender=sender)
    if info.state == ProposalState.QUEUED:
        from coordination.chain.clock import chain_now

        eta = clients.governor.proposal_eta(proposal_id)
        if chain_now(w3) < eta:
            raise ChainError(f"proposal {proposal_id} is queued until timestamp {eta}: the timelock delay runs")
        return clients.governor.execute(info.proposal, sender=sender)
    raise ChainError(
        f"proposal {proposal_id} is {info.state.name.lower()}, not succeeded or queued: "
        + {
            ProposalState.PENDING: "voting has not started yet; wait for the voting delay",
            ProposalState.ACTIVE: "voting is still open; wait for the deadline",
            ProposalState.DEFEATED: "it lost the vote or missed quorum; nothing to execute",
            ProposalState.EXECUTED: "it was already executed",
        }.get(info.state, "it cannot be executed")
    )


PROPOSAL_COLUMNS = ("proposal", "state", "executes", "nominated", "eval", "for", "against", "abstain")


def proposal_rows(infos: list[ProposalInfo]) -> list[dict]:
    """One row per proposal (`hivetune proposals`), every field decoded from the calldata and the registry."""
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


def promotion_status(w3, clients, run_id: str) -> dict:
    """{"promoted": CID or None, "proposals": proposal_rows}: the chain's side of `hivetune status`."""
    current = clients.registry.current(run_id)
    return {"promoted": current.cid if current else None, "proposals": proposal_rows(proposals(w3, clients))}
