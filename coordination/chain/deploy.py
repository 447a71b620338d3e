"""Deploy the whole contract system and save/load where it lives (`deployment.json`).

Order: HiveToken → Staking(token) → ContributionLedger(staking) → RunTimelock → RunGovernor(staking,
timelock) → CheckpointRegistry(timelock, staking: eval scores need a validator stake quorum). The
timelock then grants the governor PROPOSER_ROLE and CANCELLER_ROLE (EXECUTOR_ROLE is open to anyone)
and the deployer renounces its admin role, so only a succeeded vote, after the timelock delay, can
promote. The deployer receives the whole token supply
and owns Staking (only `setTreasury` is owner-gated; hand it to the timelock on a real run).

deployment.json keys: chainId-bound addresses `token`, `staking`, `ledger`, `timelock`, `governor`,
`registry`, plus `chain_id`, `deployer`, `block_number`.

    deployment = deploy_all(w3, deployer, DeployParams(unbonding_delay=3600))
    deployment.save("deployment.json")
    deployment = Deployment.load("deployment.json")
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coordination.chain.artifacts import load_artifact
from coordination.chain.clients import LedgerClient, RegistryClient, StakingClient, TokenClient
from coordination.chain.governance import GovernorClient, TimelockClient
from coordination.chain.transact import Sender, send, sender_address
from coordination.errors import ChainError

TOKEN = 10**18  # one whole HIVE in base units
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class DeployParams:
    token_name: str = field(default="Hive", metadata={"help": "ERC20 name of the devnet token"})
    token_symbol: str = field(default="HIVE", metadata={"help": "ERC20 symbol"})
    initial_supply: int = field(default=10**9 * TOKEN, metadata={"help": "minted to the deployer"})
    unbonding_delay: int = field(
        default=7 * 24 * 3600, metadata={"help": "seconds between requestUnstake and withdraw"}
    )
    activation_delay: int = field(
        default=24 * 3600, metadata={"help": "seconds from registerValidator until its stake counts in quorums"}
    )
    min_validator_stake: int = field(default=1_000 * TOKEN, metadata={"help": "stake needed to register as validator"})
    validator_quorum_bps: int = field(default=6_667, metadata={"help": "share of validator stake a quorum must sign"})
    treasury: str | None = field(default=None, metadata={"help": "receives slashed stake; default: the deployer"})
    challenge_window: int = field(default=24 * 3600, metadata={"help": "seconds a settled period can be voided"})
    claim_window: int = field(
        default=30 * 24 * 3600, metadata={"help": "seconds after the challenge window that claims stay open"}
    )
    max_period_reward: int = field(default=100_000 * TOKEN, metadata={"help": "cap on one period's reward"})
    min_peer_bond: int = field(default=10 * TOKEN, metadata={"help": "stake a peer must hold at a period's snapshot"})
    timelock_delay: int = field(default=24 * 3600, metadata={"help": "seconds between a vote's success and execution"})
    voting_delay: int = field(default=60, metadata={"help": "seconds from proposal to vote start (snapshot)"})
    voting_period: int = field(default=3 * 24 * 3600, metadata={"help": "seconds a vote is open"})
    proposal_threshold: int = field(default=100 * TOKEN, metadata={"help": "stake needed to propose"})
    quorum_percent: int = field(default=4, metadata={"help": "percent of total stake that must vote for+abstain"})

    def __post_init__(self):
        if not 0 < self.validator_quorum_bps <= 10_000:
            raise ValueError(f"validator_quorum_bps must be in (0, 10000], got {self.validator_quorum_bps}")
        if not 0 <= self.quorum_percent <= 100:
            raise ValueError(f"quorum_percent must be in [0, 100], got {self.quorum_percent}")
        if self.voting_period <= 0:
            raise ValueError(f"voting_period must be > 0 seconds, got {self.voting_period}")
        if self.unbonding_delay <= self.challenge_window:
            raise ValueError(
                f"unbonding_delay ({self.unbonding_delay}) must exceed challenge_window ({self.challenge_window}), "
                "or a cheater unbonds before its fraud can be slashed; raise unbonding_delay"
            )


@dataclass(frozen=True)
class Deployment:
    chain_id: int
    token: str
    staking: str
    ledger: str
    timelock: str
    governor: str
    registry: str
    deployer: str
    block_number: int

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename), so a reader never sees half a file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Deployment:
        path = Path(path)
        if not path.is_file():
            raise ChainError(f"no deployment file at {path}: run `hivetune devnet` or pass --deployment FILE")
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ChainError(
                f"{path} is not a hivetune deployment file ({exc}); redeploy with `hivetune devnet`"
            ) from exc

    def clients(self, w3) -> Clients:
        return Clients(
            token=TokenClient(w3, self.token),
            staking=StakingClient(w3, self.staking),
            ledger=LedgerClient(w3, self.ledger),
            timelock=TimelockClient(w3, self.timelock),
            governor=GovernorClient(w3, self.governor),
            registry=RegistryClient(w3, self.registry),
        )


@dataclass(frozen=True)
class Clients:
    token: TokenClient
    staking: StakingClient
    ledger: LedgerClient
    timelock: TimelockClient
    governor: GovernorClient
    registry: RegistryClient


def deploy_contract(w3, name: str, *args, sender: Sender) -> tuple[str, int]:
    """Deploy artifact `name`; returns (address, gas used)."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send(w3, factory.constructor(*args), sender=sender, action=f"deploy {name}")
    return receipt["contractAddress"], receipt["gasUsed"]


def deploy_all(w3, deployer: Sender, params: DeployParams | None = None) -> Deployment:
    p = params or DeployParams()
    me = sender_address(deployer)
    token, _ = deploy_contract(w3, "HiveToken", p.token_name, p.token_symbol, me, p.initial_supply, sender=deployer)
    staking_args = (
        token,
        p.unbonding_delay,
        p.activation_delay,
        p.min_validator_stake,
        p.validator_quorum_bps,
        p.treasury or me,
        me,
    )
    staking, _ = deploy_contract(w3, "Staking", *staking_args, sender=deployer)
    ledger_args = (staking, p.challenge_window, p.claim_window, p.max_period_reward, p.min_peer_bond)
    ledger, _ = deploy_contract(w3, "ContributionLedger", *ledger_args, sender=deployer)
    timelock, _ = deploy_contract(w3, "RunTimelock", p.timelock_delay, [], [ZERO_ADDRESS], me, sender=deployer)
    gov_args = (staking, timelock, p.voting_delay, p.voting_period, p.proposal_threshold, p.quorum_percent)
    governor, _ = deploy_contract(w3, "RunGovernor", *gov_args, sender=deployer)
    hand_timelock_to_governor(w3, timelock, governor, sender=deployer)
    registry, _ = deploy_contract(w3, "CheckpointRegistry", timelock, staking, sender=deployer)
    return Deployment(w3.eth.chain_id, token, staking, ledger, timelock, governor, registry, me, w3.eth.block_number)


def hand_timelock_to_governor(w3, timelock: str, governor: str, *, sender: Sender) -> None:
    """Governor may propose (queue) and cancel; the deployer gives up the admin role."""
    contract = w3.eth.contract(address=timelock, abi=load_artifact("RunTimelock").abi)
    f = contract.functions
    for role in (f.PROPOSER_ROLE().call(), f.CANCELLER_ROLE().call()):
        send(w3, f.grantRole(role, governor), sender=sender, action="RunTimelock.grantRole")
    admin = f.DEFAULT_ADMIN_ROLE().call()
    send(w3, f.renounceRole(admin, sender_address(sender)), sender=sender, action="RunTimelock.renounceRole")
