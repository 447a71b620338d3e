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
from coordination.chain.eip712 import Eip712Domain, PeriodSettlement, ledger_domain, run_key, staking_domain
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
        """Stake without a prior approve, given an EIP-2612 permit (`eip712.sign_permit`)."""
        return self._send("stakeWithPermit", amount, deadline, v, r, s, sender=sender)

    def request_unstake(self, amount: int, *, sender: Sender):
        return self._send("requestUnstake", amount, sender=sender)

    def withdraw(self, *, sender: Sender):
        return self._send("withdraw", sender=sender)

    def register_validator(self, *, sender: Sender):
        """Start the activation delay; the stake counts in quorums after `activate_validator`."""
        return self._send("registerValidator", sender=sender)

    def activate_validator(self, account: str, *, sender: Sender):
        return self._send("activateValidator", to_checksum_address(account), sender=sender)

    def activates_at(self, account: str) -> int:
        return self._call("activatesAt", to_checksum_address(account))

    def deregister_validator(self, *, sender: Sender):
        return self._send("deregisterValidator", sender=sender)

    def slash(self, offender: str, bps: int, evidence: bytes, snapshot: int, signatures: list[bytes], *, sender):
        """Slash `bps` of `offender`'s active + unbonding stake (quorum at `snapshot`)."""
        return self._send("slash", to_checksum_address(offender), bps, evidence, snapshot, signatures, sender=sender)

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

    def required_quorum_stake_at(self, snapshot: int) -> int:
        return self._call("requiredQuorumStakeAt", snapshot)

    def require_quorum_at(self, digest: bytes, signatures: list[bytes], snapshot: int) -> int:
        """Signed weight if `signatures` over `digest` form a validator quorum at `snapshot`, else ChainError."""
        return self._call("requireQuorumAt", digest, signatures, snapshot)

    def stake_at(self, account: str, snapshot: int) -> int:
        return self._call("stakeAt", to_checksum_address(account), snapshot)

    def validator_stake_at(self, account: str, snapshot: int) -> int:
        return self._call("validatorStakeAt", to_checksum_address(account), snapshot)

    def total_validator_stake_at(self, snapshot: int) -> int:
        return self._call("totalValidatorStakeAt", snapshot)

    def validator_stakes_at(self, addresses, snapshot: int) -> dict[str, int]:
        """{validator: weight at `snapshot`} for the given addresses that had any weight then."""
        stakes = {to_checksum_address(a): self.validator_stake_at(a, snapshot) for a in addresses}
        return {a: s for a, s in stakes.items() if s > 0}

    def slash_digest(self, offender: str, bps: int, evidence: bytes, snapshot: int) -> bytes:
        return self._call("slashDigest", to_checksum_address(offender), bps, evidence, snapshot)

    def totals(self) -> dict[str, int]:
        """totalStaked, totalPending, totalValidatorStake, validatorCount."""
        names = ("totalStaked", "totalPending", "totalValidatorStake", "validatorCount")
        return {n: self._call(n) for n in names}

    def param(self, name: str):
        """A setting: unbondingDelay, activationDelay, minValidatorStake, quorumBps, treasury, token, clock."""
        return self._call(name)

    def domain(self) -> Eip712Domain:
        return staking_domain(self.w3.eth.chain_id, self.address)


@dataclass(frozen=True)
class PeriodInfo:
    root: bytes
    total_units: int
    reward: int
    paid: int
    claimed_units: int
    first_epoch: int
    last_epoch: int
    snapshot: int
    challenge_ends_at: int
    voided: bool
    swept: bool

    @property
    def exists(self) -> bool:
        return self.root != bytes(32)


class LedgerClient(ContractClient):
    artifact_name = "ContributionLedger"

    def fund(self, amount: int, *, sender: Sender):
        return self._send("fund", amount, sender=sender)

    def submit_period(self, settlement: PeriodSettlement, signatures, *, sender: Sender):
        return self._send("submitPeriod", settlement.as_tuple(), signatures, sender=sender)

    def void_period(self, run_id, period: int, snapshot: int, signatures: list[bytes], *, sender: Sender):
        return self._send("voidPeriod", run_key(run_id), period, snapshot, signatures, sender=sender)

    def sweep(self, run_id, period: int, *, sender: Sender):
        """Return a period's unclaimed remainder to the pool once its claim window has closed."""
        return self._send("sweep", run_key(run_id), period, sender=sender)

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

    def claim_window(self) -> int:
        return self._call("claimWindow")

    def max_period_reward(self) -> int:
        return self._call("maxPeriodReward")

    def min_peer_bond(self) -> int:
        return self._call("minPeerBond")

    def next_epoch(self, run_id) -> int:
        """The first epoch a new period of `run_id` may cover (ranges never overlap)."""
        return self._call("nextEpoch", run_key(run_id))

    def period_digest(self, settlement: PeriodSettlement) -> bytes:
        return self._call("periodDigest", settlement.as_tuple())

    def domain(self) -> Eip712Domain:
        return ledger_domain(self.w3.eth.chain_id, self.address)


@dataclass(frozen=True)
class PromotedCheckpoint:
    cid: str
    eval_digest: bytes
    promoted_at: int


@dataclass(frozen=True)
class EvalResult:
    correct: int
    total: int
    records_root: bytes
    recorded: bool


@dataclass(frozen=True)
class Nomination:
    weights_hash: bytes
    block_number: int
    seed: bytes
    nominator: str


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

    def nominate(self, run_id, cid: str, weights_hash: bytes, *, sender: Sender):
        """Nominate `cid` (adapter weights hashing to `weights_hash`); the next block's hash seeds its eval."""
        return self._send("nominate", run_key(run_id), cid, bytes(weights_hash), sender=sender)

    def fix_seed(self, run_id, cid: str, *, sender: Sender):
        """Fix `cid`'s eval seed (the hash of the block after its nomination); anyone may call."""
        return self._send("fixSeed", run_key(run_id), cid, sender=sender)

    def record_eval(
        self, run_id, cid: str, correct: int, total: int, records_root: bytes, snapshot: int, signatures, *, sender
    ):
        """Record an eval score on `cid`'s fixed seed, with validators' `EvalAttestation` signatures (a stake
        quorum at `snapshot`, ordered by signer); the registry derives the seed and the eval digest."""
        args = (run_key(run_id), cid, correct, total, bytes(records_root), snapshot, list(signatures))
        return self._send("recordEval", *args, sender=sender)

    def eval_seed_int(self, run_id, cid: str) -> int:
        """The eval seed the registry derives (equals `transparent_eval.eval_seed(chain seed, run, cid)`)."""
        return self._call("evalSeed", run_key(run_id), cid)

    def eval_result(self, run_id, cid: str, eval_digest: bytes) -> EvalResult:
        return EvalResult(*self._call("evalResult", run_key(run_id), cid, bytes(eval_digest)))

    def nomination_block(self, run_id, cid: str) -> int:
        """Block number of `cid`'s nomination; ChainError (NotNominated) if it never was."""
        return self._call("nominationBlock", run_key(run_id), cid)

    def nomination(self, run_id, cid: str) -> Nomination:
        return Nomination(*self._call("nominationOf", run_key(run_id), cid))

    def eval_seed(self, run_id, cid: str) -> bytes | None:
        """The fixed eval seed of `cid`, or None while it is not fixed yet."""
        seed = bytes(self.nomination(run_id, cid).seed)
        return None if seed == bytes(32) else seed

    def cid_of_weights(self, run_id, weights_hash: bytes) -> str:
        return self._call("cidOfWeights", run_key(run_id), bytes(weights_hash))

    def eval_recorded(self, run_id, cid: str, eval_digest: bytes) -> bool:
        return self.eval_result(run_id, cid, eval_digest).recorded

    def governor(self) -> str:
        return self._call("governor")
