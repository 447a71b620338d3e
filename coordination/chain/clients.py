"""Typed web3.py clients for HiveToken, Staking, ContributionLedger and CheckpointRegistry.

Every write takes `sender=` (an unlocked address or a LocalAccount) and returns the receipt; every
failure is a `ChainError` whose `error_name`/`error_args` hold the contract's custom error.

    staking = StakingClient(w3, deployment.staking)
    token.approve(staking.address, 10**18, sender=me); staking.stake(10**18, sender=me)
    ledger.claim(run_id, 0, peer, units, proof, sender=me)

Run ids may be given as strings (hashed by `run_key`) or bytes32.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address

from coordination.chain.artifacts import load_artifact
from coordination.chain.signing import Eip712Domain, ledger_domain, run_key, staking_domain
from coordination.chain.transact import Sender, call, send


class ContractClient:
    """One deployed contract: `_call` for views, `_send` for transactions."""

    artifact_name: str = ""

    def __init__(self, w3, address: str):
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(self.artifact_name).abi)

    def _call(self, fn_name: str, *args):
        return call(
            self.w3, getattr(self.contract.functions, fn_name)(*args), action=f"{self.artifact_name}.{fn_name}"
        )

    def _send(self, fn_name: str, *args, sender: Sender):
        fn = getattr(self.contract.functions, fn_name)(*args)
        return send(self.w3, fn, sender=sender, action=f"{self.artifact_name}.{fn_name}")

    def events(self, event_name: str, receipt) -> list[dict]:
        """Decoded `event_name` logs of this contract in `receipt` (the `args` of each)."""
        from web3.logs import DISCARD

        event = getattr(self.contract.events, event_name)()
        return [dict(log["args"]) for log in event.process_receipt(receipt, errors=DISCARD)]


class TokenClient(ContractClient):
    artifact_name = "HiveToken"

    def nonces(self, owner: str) -> int:
        """EIP-2612 permit nonce of `owner`."""
        return self._call("nonces", to_checksum_address(owner))

    def domain(self) -> Eip712Domain:
        """The token's EIP-712 domain (ERC20Permit: name = token name, version "1")."""
        return Eip712Domain(self._call("name"), "1", self.w3.eth.chain_id, self.address)

    def balance_of(self, account: str) -> int:
        return self._call("balanceOf", to_checksum_address(account))

    def total_supply(self) -> int:
        return self._call("totalSupply")

    def allowance(self, owner: str, spender: str) -> int:
        return self._call("allowance", to_checksum_address(owner), to_checksum_address(spender))

    def approve(self, spender: str, amount: int, *, sender: Sender):
        return self._send("approve", to_checksum_address(spender), amount, sender=sender)

    def transfer(self, to: str, amount: int, *, sender: Sender):
        return self._send("transfer", to_checksum_address(to), amount, sender=sender)


class StakingClient(ContractClient):
    artifact_name = "Staking"

    def stake(self, amount: int, *, sender: Sender):
        return self._send("stake", amount, sender=sender)

    def stake_with_permit(self, amount: int, deadline: int, v: int, r: bytes, s: bytes, *, sender: Sender):
        """Stake without a prior approve, given an EIP-2612 permit (`signing.sign_permit`)."""
        return self._send("stakeWithPermit", amount, deadline, v, r, s, sender=sender)

    def request_unstake(self, amount: int, *, sender: Sender):
        return self._send("requestUnstake", amount, sender=sender)

    def withdraw(self, *, sender: Sender):
        return self._send("withdraw", sender=sender)

    def register_validator(self, *, sender: Sender):
        return self._send("registerValidator", sender=sender)

    def deregister_validator(self, *, sender: Sender):
        return self._send("deregisterValidator", sender=sender)

    def slash(self, offender: str, amount: int, evidence: bytes, signatures: list[bytes], *, sender: Sender):
        return self._send("slash", to_checksum_address(offender), amount, evidence, signatures, sender=sender)

    def set_treasury(self, treasury: str, *, sender: Sender):
        return self._send("setTreasury", to_checksum_address(treasury), sender=sender)

    def delegate(self, delegatee: str, *, sender: Sender):
        return self._send("delegate", to_checksum_address(delegatee), sender=sender)

    def stake_of(self, account: str) -> int:
        return self._call("stakeOf", to_checksum_address(account))

    def pending_withdrawal(self, account: str) -> tuple[int, int]:
        """(amount, release timestamp) of `account`'s pending withdrawal."""
        return tuple(self._call("pendingWithdrawal", to_checksum_address(account)))

    def is_validator(self, account: str) -> bool:
        return self._call("isValidator", to_checksum_address(account))

    def get_votes(self, account: str) -> int:
        return self._call("getVotes", to_checksum_address(account))

    def get_past_votes(self, account: str, timepoint: int) -> int:
        return self._call("getPastVotes", to_checksum_address(account), timepoint)

    def evidence_used(self, evidence: bytes) -> bool:
        return self._call("evidenceUsed", evidence)

    def required_quorum_stake(self) -> int:
        return self._call("requiredQuorumStake")

    def require_quorum(self, digest: bytes, signatures: list[bytes]) -> int:
        """Signed stake if `signatures` over `digest` form a validator quorum, else ChainError."""
        return self._call("requireQuorum", digest, signatures)

    def slash_digest(self, offender: str, amount: int, evidence: bytes) -> bytes:
        return self._call("slashDigest", to_checksum_address(offender), amount, evidence)

    def totals(self) -> dict[str, int]:
        """totalStaked, totalPending, totalValidatorStake, validatorCount."""
        names = ("totalStaked", "totalPending", "totalValidatorStake", "validatorCount")
        return {n: self._call(n) for n in names}

    def param(self, name: str):
        """A constructor parameter or setting: unbondingDelay, minValidatorStake, quorumBps, treasury, token, clock."""
        return self._call(name)

    def domain(self) -> Eip712Domain:
        return staking_domain(self.w3.eth.chain_id, self.address)


@dataclass(frozen=True)
class PeriodInfo:
    root: bytes
    total_units: int
    reward: int
    paid: int
    challenge_ends_at: int
    voided: bool

    @property
    def exists(self) -> bool:
        return self.root != bytes(32)


class LedgerClient(ContractClient):
    artifact_name = "ContributionLedger"

    def fund(self, amount: int, *, sender: Sender):
        return self._send("fund", amount, sender=sender)

    def submit_period(self, run_id, period: int, root: bytes, total_units: int, reward: int, signatures, *, sender):
        return self._send(
            "submitPeriod", run_key(run_id), period, root, total_units, reward, signatures, sender=sender
        )

    def void_period(self, run_id, period: int, signatures: list[bytes], *, sender: Sender):
        return self._send("voidPeriod", run_key(run_id), period, signatures, sender=sender)

    def claim(self, run_id, period: int, peer: str, units: int, proof: list[bytes], *, sender: Sender):
        return self._send("claim", run_key(run_id), period, to_checksum_address(peer), units, proof, sender=sender)

    def get_period(self, run_id, period: int) -> PeriodInfo:
        return PeriodInfo(*self._call("getPeriod", run_key(run_id), period))

    def is_claimed(self, run_id, period: int, peer: str) -> bool:
        return self._call("isClaimed", run_key(run_id), period, to_checksum_address(peer))

    def reward_pool(self) -> int:
        return self._call("rewardPool")

    def outstanding_rewards(self) -> int:
        return self._call("outstandingRewards")

    def challenge_window(self) -> int:
        return self._call("challengeWindow")

    def period_digest(self, run_id, period: int, root: bytes, total_units: int, reward: int) -> bytes:
        return self._call("periodDigest", run_key(run_id), period, root, total_units, reward)

    def domain(self) -> Eip712Domain:
        return ledger_domain(self.w3.eth.chain_id, self.address)


@dataclass(frozen=True)
class PromotedCheckpoint:
    cid: str
    eval_digest: bytes
    promoted_at: int


class RegistryClient(ContractClient):
    artifact_name = "CheckpointRegistry"

    def lineage_length(self, run_id) -> int:
        return self._call("lineageLength", run_key(run_id))

    def checkpoint_at(self, run_id, index: int) -> PromotedCheckpoint:
        return PromotedCheckpoint(*self._call("checkpointAt", run_key(run_id), index))

    def lineage(self, run_id) -> list[PromotedCheckpoint]:
        """Promoted checkpoints of the run, oldest first."""
        return [self.checkpoint_at(run_id, i) for i in range(self.lineage_length(run_id))]

    def current(self, run_id) -> PromotedCheckpoint | None:
        """The run's promoted checkpoint, or None if nothing was promoted yet."""
        n = self.lineage_length(run_id)
        return self.checkpoint_at(run_id, n - 1) if n else None

    def is_promoted(self, run_id, cid: str) -> bool:
        return self._call("isPromoted", run_key(run_id), cid)

    def nominate(self, run_id, cid: str, *, sender: Sender):
        """Nominate `cid` for promotion; the block it is mined in seeds the transparent eval."""
        return self._send("nominate", run_key(run_id), cid, sender=sender)

    def nomination_block(self, run_id, cid: str) -> int:
        """Block number of `cid`'s nomination; ChainError (NotNominated) if it never was."""
        return self._call("nominationBlock", run_key(run_id), cid)

    def governor(self) -> str:
        return self._call("governor")
