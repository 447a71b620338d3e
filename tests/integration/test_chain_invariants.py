"""Stateful property test: random stake / unstake / withdraw / slash / settle / void / claim sequences.

After every step, for several accounts:
- tokens held by Staking + ContributionLedger == active stakes + pending withdrawals + unclaimed rewards
  (the ledger's unreserved pool plus its reserved-but-unpaid rewards);
- no account has withdrawn more than it staked minus what was slashed from it;
- no period has paid more than its reward;
- the contract's per-account stake and pending amounts equal a plain-Python model's.
One deployment for the module; every hypothesis example runs from the same snapshot.
"""

import pytest
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import DeployParams
from coordination.chain.merkle import StandardMerkleTree
from coordination.chain.sandbox import ANY, Sandbox, expect_revert, register_validators
from coordination.chain.signing import quorum_signatures, sign_period, sign_slash, sign_void

pytestmark = [pytest.mark.chain, pytest.mark.slow]

PARAMS = DeployParams(unbonding_delay=100, min_validator_stake=1000, validator_quorum_bps=6667, challenge_window=50)
STAKERS = 3
POOL = 50_000
RUN = "bafy-invariants"
PERCENT = st.integers(1, 120)  # of what the account has: above 100 exercises the revert path


@pytest.fixture(scope="module")
def box():
    box = Sandbox.create(accounts=STAKERS + 2, fund_each=20_000, params=PARAMS)
    register_validators(box, {v: 2000 for v in box.accounts[STAKERS:]})
    box.c.token.approve(box.c.ledger.address, POOL, sender=box.deployer)
    box.c.ledger.fund(POOL, sender=box.deployer)
    return box


class StakeLedgerMachine(RuleBasedStateMachine):
    box: Sandbox = None

    def __init__(self):
        super().__init__()
        self.snap = self.box.snapshot()
        self.c = self.box.c
        self.users = [a.address for a in self.box.accounts[:STAKERS]]
        self.validators = self.box.accounts[STAKERS:]
        self.deposited = [0] * STAKERS
        self.withdrawn = [0] * STAKERS
        self.slashed = [0] * STAKERS
        self.stake = [0] * STAKERS
        self.pending = [0] * STAKERS
        self.release_at = [0] * STAKERS
        self.periods = []  # dicts: tree, units, total, reward, ends, paid, claimed
        self.pool = POOL
        self.evidence = 0

    @initialize(amounts=st.lists(st.integers(1, 3000), min_size=STAKERS, max_size=STAKERS))
    def everyone_stakes(self, amounts):
        for i, amount in enumerate(amounts):
            self.stake_tokens(i, amount)

    def teardown(self):
        self.box.revert(self.snap)

    # ------------------------------------------------------------ rules

    @rule(i=st.integers(0, STAKERS - 1), amount=st.integers(1, 3000))
    def stake_tokens(self, i, amount):
        self.box.approve_and_stake(self.users[i], amount)
        self.deposited[i] += amount
        self.stake[i] += amount

    @rule(i=st.integers(0, STAKERS - 1), percent=PERCENT)
    def request_unstake(self, i, percent):
        amount = max(1, self.stake[i] * percent // 100)
        if amount > self.stake[i]:
            with expect_revert("StakeTooLow", self.stake[i], amount):
                self.c.staking.request_unstake(amount, sender=self.users[i])
            return
        self.c.staking.request_unstake(amount, sender=self.users[i])
        self.stake[i] -= amount
        self.pending[i] += amount
        self.release_at[i] = chain_now(self.box.w3) + PARAMS.unbonding_delay

    def _wait_until(self, timestamp: int) -> None:
        now = chain_now(self.box.w3)
        if timestamp > now:
            advance_time(self.box.w3, timestamp - now)

    @rule(i=st.integers(0, STAKERS - 1), wait_out=st.booleans())
    def withdraw(self, i, wait_out):
        user = self.users[i]
        if wait_out:
            self._wait_until(self.release_at[i])
        if self.pending[i] == 0:
            with expect_revert("NothingToWithdraw", user):
                self.c.staking.withdraw(sender=user)
        elif chain_now(self.box.w3) + 1 < self.release_at[i]:
            with expect_revert("StillUnbonding", self.release_at[i], ANY):
                self.c.staking.withdraw(sender=user)
        else:
            self.c.staking.withdraw(sender=user)
            self.withdrawn[i] += self.pending[i]
            self.pending[i] = 0

    @rule(i=st.integers(0, STAKERS - 1), percent=st.integers(1, 100))
    def unbond_and_withdraw(self, i, percent):
        """The full unstake path in one step (the separate rules also interleave it with everything else)."""
        if self.stake[i] == 0:
            return
        self.request_unstake(i, percent)
        self.withdraw(i, wait_out=True)

    @rule(seconds=st.sampled_from([1, 60, 240]))
    def wait(self, seconds):
        advance_time(self.box.w3, seconds)

    @rule(i=st.integers(0, STAKERS - 1), percent=PERCENT)
    def slash(self, i, percent):
        amount = max(1, (self.stake[i] + self.pending[i]) * percent // 100)
        user, evidence = self.users[i], keccak(text=f"evidence {self.evidence}")
        self.evidence += 1
        domain = self.c.staking.domain()
        sigs = quorum_signatures(self.validators, lambda a: sign_slash(a, domain, user, amount, evidence))
        available = self.stake[i] + self.pending[i]
        if amount > available:
            with expect_revert("SlashExceedsStake", amount, available):
                self.c.staking.slash(user, amount, evidence, sigs, sender=self.box.deployer)
            return
        self.c.staking.slash(user, amount, evidence, sigs, sender=self.box.deployer)
        from_active = min(amount, self.stake[i])
        self.stake[i] -= from_active
        self.pending[i] -= amount - from_active
        self.slashed[i] += amount

    @rule(units=st.lists(st.integers(1, 1000), min_size=STAKERS, max_size=STAKERS), reward=st.integers(0, 5000))
    def settle_period(self, units, reward):
        period, total = len(self.periods), sum(units)
        tree = StandardMerkleTree.of(list(zip(self.users, units, strict=True)), ["address", "uint256"])
        domain = self.c.ledger.domain()
        sigs = quorum_signatures(
            self.validators, lambda a: sign_period(a, domain, RUN, period, tree.root, total, reward)
        )
        self.c.ledger.submit_period(RUN, period, tree.root, total, reward, sigs, sender=self.box.deployer)
        ends = chain_now(self.box.w3) + PARAMS.challenge_window
        self.periods.append(
            {
                "tree": tree,
                "units": units,
                "total": total,
                "reward": reward,
                "ends": ends,
                "paid": 0,
                "claimed": set(),
                "voided": False,
            }
        )
        self.pool -= reward

    @rule(data=st.data())
    def void_period(self, data):
        if not self.periods:
            return
        k = data.draw(st.integers(0, len(self.periods) - 1))
        p, domain = self.periods[k], self.c.ledger.domain()
        sigs = quorum_signatures(self.validators, lambda a: sign_void(a, domain, RUN, k))
        if p["voided"]:
            with expect_revert("PeriodIsVoided", ANY, k):
                self.c.ledger.void_period(RUN, k, sigs, sender=self.box.deployer)
        elif chain_now(self.box.w3) + 1 >= p["ends"]:
            with expect_revert("ChallengeWindowClosed", p["ends"], ANY):
                self.c.ledger.void_period(RUN, k, sigs, sender=self.box.deployer)
        else:
            self.c.ledger.void_period(RUN, k, sigs, sender=self.box.deployer)
            p["voided"] = True
            self.pool += p["reward"]

    @rule(data=st.data(), i=st.integers(0, STAKERS - 1), wait_out=st.booleans())
    def claim(self, data, i, wait_out):
        if not self.periods:
            return
        k = data.draw(st.integers(0, len(self.periods) - 1))
        p, user = self.periods[k], self.users[i]
        if wait_out:
            self._wait_until(p["ends"])
        args = (RUN, k, user, p["units"][i], p["tree"].proof(i))
        if p["voided"]:
            with expect_revert("PeriodIsVoided", ANY, k):
                self.c.ledger.claim(*args, sender=user)
        elif chain_now(self.box.w3) + 1 < p["ends"]:
            with expect_revert("ChallengeWindowOpen", p["ends"], ANY):
                self.c.ledger.claim(*args, sender=user)
        elif i in p["claimed"]:
            with expect_revert("AlreadyClaimed", ANY, k, user):
                self.c.ledger.claim(*args, sender=user)
        else:
            before = self.c.token.balance_of(user)
            self.c.ledger.claim(*args, sender=user)
            share = p["reward"] * p["units"][i] // p["total"]
            assert self.c.token.balance_of(user) == before + share
            p["paid"] += share
            p["claimed"].add(i)

    # ------------------------------------------------------------ invariants

    @invariant()
    def contracts_hold_exactly_stakes_pending_and_unclaimed(self):
        held = self.c.token.balance_of(self.c.staking.address) + self.c.token.balance_of(self.c.ledger.address)
        totals = self.c.staking.totals()
        unclaimed = self.c.ledger.reward_pool() + self.c.ledger.outstanding_rewards()
        assert held == totals["totalStaked"] + totals["totalPending"] + unclaimed
        model_unclaimed = self.pool + sum(p["reward"] - p["paid"] for p in self.periods if not p["voided"])
        validator_stake = 2000 * len(self.validators)
        assert held == sum(self.stake) + sum(self.pending) + validator_stake + model_unclaimed

    @invariant()
    def nobody_withdraws_more_than_deposited_minus_slashed(self):
        for i in range(STAKERS):
            assert self.withdrawn[i] <= self.deposited[i] - self.slashed[i]
            assert self.withdrawn[i] + self.stake[i] + self.pending[i] + self.slashed[i] == self.deposited[i]

    @invariant()
    def periods_never_overpay(self):
        for k, p in enumerate(self.periods):
            paid = self.c.ledger.get_period(RUN, k).paid
            assert paid == p["paid"] <= p["reward"]

    @invariant()
    def per_account_state_matches_the_model(self):
        for i, user in enumerate(self.users):
            assert self.c.staking.stake_of(user) == self.stake[i]
            assert self.c.staking.get_votes(user) == self.stake[i]
            assert self.c.staking.pending_withdrawal(user)[0] == self.pending[i]


def test_stake_ledger_invariants_hold_over_random_sequences(box):
    StakeLedgerMachine.box = box
    run_state_machine_as_test(
        StakeLedgerMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        ),
    )
