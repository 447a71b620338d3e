"""Client for RunGovernor: propose a checkpoint promotion, vote with stake, execute.

Votes are Staking's checkpointed stake read at the proposal snapshot (clock = timestamps, so
voting delay/period are seconds). A succeeded proposal is queued in the RunTimelock and executed
through it after the timelock's delay; the registry obeys only the timelock.

    gov = GovernorClient(w3, deployment.governor)
    proposal = promotion_proposal(deployment.registry, run_id, cid, eval_digest)
    pid = gov.propose(proposal, sender=staker)
    advance_time(w3, gov.voting_delay() + 1); gov.cast_vote(pid, Support.FOR, sender=staker)
    advance_time(w3, gov.voting_period() + 1); gov.queue(proposal, sender=anyone)
    advance_time(w3, timelock.min_delay() + 1); gov.execute(proposal, sender=anyone)

What a proposal does is read from its calldata (`decode_actions`), never from its description.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from eth_utils import keccak, to_checksum_address

from coordination.chain.artifacts import load_artifact
from coordination.chain.clients import ContractClient
from coordination.chain.eip712 import run_key
from coordination.chain.transact import Sender


class ProposalState(enum.IntEnum):
    """OZ IGovernor.ProposalState, in its order."""

    PENDING = 0
    ACTIVE = 1
    CANCELED = 2
    DEFEATED = 3
    SUCCEEDED = 4
    QUEUED = 5
    EXPIRED = 6
    EXECUTED = 7


class Support(enum.IntEnum):
    """GovernorCountingSimple vote types."""

    AGAINST = 0
    FOR = 1
    ABSTAIN = 2


@dataclass(frozen=True)
class Proposal:
    """The exact (targets, values, calldatas, description) a proposal id is hashed from."""

    targets: tuple[str, ...]
    values: tuple[int, ...]
    calldatas: tuple[bytes, ...]
    description: str

    @property
    def description_hash(self) -> bytes:
        return keccak(text=self.description)

    def as_args(self) -> tuple[list, list, list]:
        return list(self.targets), list(self.values), list(self.calldatas)


def promotion_proposal(registry_address: str, run_id, cid: str, eval_digest: bytes, description: str = "") -> Proposal:
    """A proposal whose execution calls `CheckpointRegistry.promote(runId, cid, evalDigest)`."""
    from web3 import Web3

    registry = Web3().eth.contract(abi=load_artifact("CheckpointRegistry").abi)
    calldata = registry.encode_abi("promote", args=[run_key(run_id), cid, bytes(eval_digest)])
    text = description or f"Promote checkpoint {cid} for run 0x{run_key(run_id).hex()}"
    return Proposal((to_checksum_address(registry_address),), (0,), (bytes.fromhex(calldata[2:]),), text)


def rollback_proposal(registry_address: str, run_id, index: int, description: str = "") -> Proposal:
    """A proposal whose execution makes lineage entry `index` current again (`CheckpointRegistry.rollback`)."""
    from web3 import Web3

    registry = Web3().eth.contract(abi=load_artifact("CheckpointRegistry").abi)
    calldata = registry.encode_abi("rollback", args=[run_key(run_id), index])
    text = description or f"Roll run 0x{run_key(run_id).hex()} back to lineage entry {index}"
    return Proposal((to_checksum_address(registry_address),), (0,), (bytes.fromhex(calldata[2:]),), text)


@dataclass(frozen=True)
class Action:
    """One decoded call of a proposal: what will execute, whatever the description says."""

    target: str
    value: int
    function: str  # "promote", "rollback", ... or "unknown"
    args: dict

    def summary(self) -> str:
        args = ", ".join(f"{k}={'0x' + v.hex() if isinstance(v, bytes) else v}" for k, v in self.args.items())
        return f"{self.function}({args}) on {self.target}" + (f" with {self.value} wei" if self.value else "")


def decode_actions(targets, values, calldatas, *, registry_address: str) -> list[Action]:
    """Decode each call against the registry's ABI; calls to anything else are `unknown` (with raw data)."""
    from web3 import Web3

    registry = Web3().eth.contract(abi=load_artifact("CheckpointRegistry").abi)
    actions = []
    for target, value, data in zip(targets, values, calldatas, strict=True):
        target, data = to_checksum_address(target), bytes(data)
        if target == to_checksum_address(registry_address):
            try:
                fn, args = registry.decode_function_input(data)
                actions.append(Action(target, int(value), fn.fn_name, dict(args)))
                continue
            except ValueError:
                pass
        actions.append(Action(target, int(value), "unknown", {"calldata": data}))
    return actions


@dataclass(frozen=True)
class ProposalVotes:
    against: int
    for_: int
    abstain: int


class GovernorClient(ContractClient):
    artifact_name = "RunGovernor"

    def proposal_id(self, proposal: Proposal) -> int:
        return self._call("hashProposal", *proposal.as_args(), proposal.description_hash)

    def propose(self, proposal: Proposal, *, sender: Sender) -> int:
        """Submit `proposal`; returns its id. Needs `proposal_threshold()` of votes at the previous second."""
        self._send("propose", *proposal.as_args(), proposal.description, sender=sender)
        return self.proposal_id(proposal)

    def cast_vote(self, proposal_id: int, support: Support, *, sender: Sender, reason: str = ""):
        if reason:
            return self._send("castVoteWithReason", proposal_id, int(support), reason, sender=sender)
        return self._send("castVote", proposal_id, int(support), sender=sender)

    def queue(self, proposal: Proposal, *, sender: Sender):
        """Queue a succeeded proposal in the timelock (executable after its delay)."""
        return self._send("queue", *proposal.as_args(), proposal.description_hash, sender=sender)

    def execute(self, proposal: Proposal, *, sender: Sender):
        return self._send("execute", *proposal.as_args(), proposal.description_hash, sender=sender)

    def proposal_eta(self, proposal_id: int) -> int:
        """When a queued proposal becomes executable (0 if not queued)."""
        return self._call("proposalEta", proposal_id)

    def timelock(self) -> str:
        return self._call("timelock")

    def state(self, proposal_id: int) -> ProposalState:
        return ProposalState(self._call("state", proposal_id))

    def proposal_votes(self, proposal_id: int) -> ProposalVotes:
        return ProposalVotes(*self._call("proposalVotes", proposal_id))

    def has_voted(self, proposal_id: int, account: str) -> bool:
        return self._call("hasVoted", proposal_id, to_checksum_address(account))

    def proposal_snapshot(self, proposal_id: int) -> int:
        return self._call("proposalSnapshot", proposal_id)

    def proposal_deadline(self, proposal_id: int) -> int:
        return self._call("proposalDeadline", proposal_id)

    def quorum(self, timepoint: int) -> int:
        return self._call("quorum", timepoint)

    def voting_delay(self) -> int:
        return self._call("votingDelay")

    def voting_period(self) -> int:
        return self._call("votingPeriod")

    def proposal_threshold(self) -> int:
        return self._call("proposalThreshold")


class TimelockClient(ContractClient):
    artifact_name = "RunTimelock"

    def min_delay(self) -> int:
        return self._call("getMinDelay")

    def has_role(self, role_name: str, account: str) -> bool:
        return self._call("hasRole", self._call(role_name), to_checksum_address(account))
