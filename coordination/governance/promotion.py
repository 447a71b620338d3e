"""Checkpoint promotion by stake vote: nominate → transparent eval → propose → vote → promote.

1. `nominate(clients, run_id, cid)` records the nomination block on `CheckpointRegistry`; the eval
   seed is `eval_seed(hash of that block, run, cid)`, unknown until the nomination is mined.
2. Validators run the eval on that seed and sign it (`transparent_eval`).
3. `propose_promotion` refuses a bundle whose attestations are missing, forged, for another CID or
   seed, or signed by non-validators, then proposes `CheckpointRegistry.promote(run, cid, digest)`
   on the governor. The description carries the score so voters see it on chain.
4. Stakers `vote`; voting power is their stake at the proposal snapshot (a voter without stake
   has zero weight). `promote` executes a succeeded proposal.

    nom = nominate(clients, run_id, cid, sender=operator)
    pid = propose_promotion(w3, clients, run_id=run_id, cid=cid, bundle=bundle, sender=staker)
    vote(clients, pid, "for", sender=staker); ...; promote(w3, clients, pid, sender=anyone)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from coordination.chain.governance import Proposal, ProposalState, Support, promotion_proposal
from coordination.chain.signing import run_key
from coordination.errors import ChainError
from coordination.governance.transparent_eval import EvalBundle, check_attestations, eval_domain, eval_seed

DESCRIPTION_TAG = "hivetune-promote:"


@dataclass(frozen=True)
class Nomination:
    cid: str
    block_number: int
    seed: int


def nomination_seed(w3, clients, run_id: str, cid: str) -> Nomination:
    """The chain-fixed eval seed of a nominated checkpoint (ChainError if it was never nominated)."""
    block_number = clients.registry.nomination_block(run_id, cid)
    block_hash = bytes(w3.eth.get_block(block_number)["hash"])
    return Nomination(cid, block_number, eval_seed(block_hash, run_key(run_id), cid))


def nominate(w3, clients, run_id: str, cid: str, *, sender) -> Nomination:
    """Nominate `cid` for promotion; returns its nomination block and eval seed."""
    clients.registry.nominate(run_id, cid, sender=sender)
    return nomination_seed(w3, clients, run_id, cid)


def describe(run_id: str, bundle: EvalBundle) -> str:
    """Proposal description: a human line, then a tagged JSON line that `open_proposals` parses."""
    facts = {
        "run_id": run_id,
        "cid": bundle.cid,
        "seed": bundle.seed,
        "correct": bundle.correct,
        "total": bundle.total,
        "records_root": "0x" + bundle.root.hex(),
        "eval_digest": "0x" + bundle.digest.hex(),
        "validators": [a["validator"] for a in bundle.attestations],
    }
    human = f"Promote checkpoint {bundle.cid}: eval {bundle.correct}/{bundle.total} on seed {bundle.seed}"
    return f"{human}\n{DESCRIPTION_TAG}{json.dumps(facts, sort_keys=True)}"


def parse_description(description: str) -> dict | None:
    for line in description.splitlines():
        if line.startswith(DESCRIPTION_TAG):
            try:
                return json.loads(line[len(DESCRIPTION_TAG) :])
            except json.JSONDecodeError:
                return None
    return None


def propose_promotion(w3, clients, *, run_id: str, cid: str, bundle: EvalBundle, sender, quorum: int = 1) -> int:
    """Check the eval attestations against the chain, then propose the promotion; returns the proposal id."""
    nomination = nomination_seed(w3, clients, run_id, cid)
    check_attestations(
        bundle,
        cid=cid,
        seed=nomination.seed,
        domain=eval_domain(w3.eth.chain_id, clients.registry.address),
        is_validator=clients.staking.is_validator,
        quorum=quorum,
    )
    proposal = promotion_proposal(clients.registry.address, run_id, cid, bundle.digest, describe(run_id, bundle))
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
    facts: dict | None


def _created_events(w3, clients) -> list:
    event = clients.governor.contract.events.ProposalCreated
    return event.get_logs(from_block=0)


def proposals(w3, clients) -> list[ProposalInfo]:
    """Every promotion proposal on the governor, with its state, tallies and eval facts."""
    out = []
    for ev in _created_events(w3, clients):
        a = ev["args"]
        proposal = Proposal(
            tuple(a["targets"]), tuple(a["values"]), tuple(bytes(c) for c in a["calldatas"]), a["description"]
        )
        pid = a["proposalId"]
        votes = clients.governor.proposal_votes(pid)
        state = clients.governor.state(pid)
        facts = parse_description(a["description"])
        out.append(ProposalInfo(pid, proposal, state, votes.for_, votes.against, votes.abstain, facts))
    return out


def find_proposal(w3, clients, proposal_id: int) -> ProposalInfo:
    for info in proposals(w3, clients):
        if info.proposal_id == proposal_id:
            return info
    raise ChainError(
        f"no proposal {proposal_id} on governor {clients.governor.address}: list them with `hivetune status`"
    )


def promote(w3, clients, proposal_id: int, *, sender):
    """Execute a succeeded promotion proposal; a clear error when it is not (yet) executable."""
    info = find_proposal(w3, clients, proposal_id)
    if info.state != ProposalState.SUCCEEDED:
        raise ChainError(
            f"proposal {proposal_id} is {info.state.name.lower()}, not succeeded: "
            + {
                ProposalState.PENDING: "voting has not started yet; wait for the voting delay",
                ProposalState.ACTIVE: "voting is still open; wait for the deadline",
                ProposalState.DEFEATED: "it lost the vote or missed quorum; nothing to execute",
                ProposalState.EXECUTED: "it was already executed",
            }.get(info.state, "it cannot be executed")
        )
    return clients.governor.execute(info.proposal, sender=sender)
