"""Staking on eth-tester: stake/unstake/withdraw, activation delay, stake snapshots, quorum at a snapshot,
bps slashing over active + unbonding stake, votes.

One deployment per module, a snapshot/revert around every test. Every revert asserts its exact
custom error and arguments.
"""

import pytest
from eth_utils import keccak

from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import DeployParams, deploy_contract
from coordination.chain.eip712 import order_by_signer, quorum_signatures, sign_permit, sign_slash, staking_domain
from coordination.chain.sandbox import ANY, Sandbox, register_validators, revert_of
from coordination.errors import ChainError

pytestmark = pytest.mark.chain

TREASURY = "0x000000000000000000000000000000000000bEEF"
PARAMS = DeployParams(
    unbonding_delay=100,
    activation_delay=20,
    min_validator_stake=1000,
    validator_quorum_bps=6667,
    treasury=TREASURY,
    challenge_window=50,
    voting_delay=10,
    voting_period=100,
    proposal_threshold=500,
    quorum_percent=10,
)
EVIDENCE = keccak(text="fraud evidence #1")


@pytest.fixture(scope="module")
def box():
    box = Sandbox.create(accounts=6, params=PARAMS)
    v0, v1, v2 = box.accounts[:3]
    register_validators(box, {v0: 1000, v1: 2000, v2: 3000})  # total 6000, quorum needs ceil(4000.2) = 4001
    return box


@pytest.fixture(autouse=True)
def fresh(box):
    snap = box.snapshot()
    yield
    box.revert(snap)


def addr(box, i):
    return box.accounts[i].address


def slash_sigs(box, signers, offender, bps, snapshot, evidence=EVIDENCE, domain=None):
    domain = domain or box.c.staking.domain()
    return quorum_signatures(signers, lambda a: sign_slash(a, domain, offender, bps, evidence, snapshot))


# ---------------------------------------------------------------- stake


def test_stake_moves_tokens_and_self_delegates_votes(box):
    user = addr(box, 3)
    before = box.c.token.balance_of(user)
    box.c.token.approve(box.c.staking.address, 700, sender=user)
    receipt = box.c.staking.stake(700, sender=user)
    assert box.c.staking.events("Staked", receipt) == [{"account": user, "amount": 700}]
    assert box.c.token.balance_of(user) == before - 700
    assert box.c.staking.stake_of(user) == 700
    assert box.c.staking.get_votes(user) == 700
    assert box.c.staking.totals()["totalStaked"] == 6000 + 700


def test_stake_zero_and_without_allowance_revert(box):
    user = addr(box, 3)
    assert revert_of(lambda: box.c.staking.stake(0, sender=user)) == ("ZeroAmount", ())
    assert revert_of(lambda: box.c.staking.stake(5, sender=user)) == (
        "ERC20InsufficientAllowance",
        (box.c.staking.address, 0, 5),
    )


def test_stake_with_permit_needs_no_approve(box):
    owner = box.accounts[3]
    deadline = chain_now(box.w3) + 3600
    nonce = box.c.token.nonces(owner.address)
    v, r, s = sign_permit(owner, box.c.token.domain(), box.c.staking.address, 321, nonce, deadline)
    box.c.staking.stake_with_permit(321, deadline, v, r, s, sender=owner.address)
    assert box.c.staking.stake_of(owner.address) == 321
    assert box.c.token.nonces(owner.address) == nonce + 1
    assert revert_of(lambda: box.c.staking.stake_with_permit(321, deadline, v, r, s, sender=owner.address)) == (
        "ERC2612InvalidSigner",
        (ANY, owner.address),
    )  # the permit cannot be replayed


def test_clock_is_timestamp(box):
    assert box.c.staking.param("CLOCK_MODE") == "mode=timestamp"
    assert box.c.staking.param("clock") == chain_now(box.w3)


# ---------------------------------------------------------------- unstake / withdraw


def test_request_unstake_then_withdraw_after_delay(box):
    user = addr(box, 3)
    box.approve_and_stake(user, 500)
    before = box.c.token.balance_of(user)
    receipt = box.c.staking.request_unstake(200, sender=user)
    release_at = chain_now(box.w3) + 100
    assert box.c.staking.events("UnstakeRequested", receipt) == [
        {"account": user, "amount": 200, "releaseAt": release_at}
    ]
    assert box.c.staking.stake_of(user) == 300
    assert box.c.staking.get_votes(user) == 300
    assert box.c.staking.pending_withdrawal(user) == (200, release_at)
    assert revert_of(lambda: box.c.staking.withdraw(sender=user)) == ("StillUnbonding", (release_at, ANY))
    advance_time(box.w3, 100)
    receipt = box.c.staking.withdraw(sender=user)
    assert box.c.staking.events("Withdrawn", receipt) == [{"account": user, "amount": 200}]
    assert box.c.token.balance_of(user) == before + 200
    assert box.c.staking.pending_withdrawal(user) == (0, 0)
    assert box.c.staking.totals()["totalPending"] == 0


def test_second_request_adds_and_restarts_delay(box):
    user = addr(box, 3)
    box.approve_and_stake(user, 500)
    box.c.staking.request_unstake(100, sender=user)
    advance_time(box.w3, 60)
    box.c.staking.request_unstake(50, sender=user)
    assert box.c.staking.pending_withdrawal(user) == (150, chain_now(box.w3) + 100)


def test_unstake_reverts(box):
    user = addr(box, 3)
    box.approve_and_stake(user, 500)
    assert revert_of(lambda: box.c.staking.request_unstake(0, sender=user)) == ("ZeroAmount", ())
    assert revert_of(lambda: box.c.staking.request_unstake(501, sender=user)) == ("StakeTooLow", (500, 501))
    assert revert_of(lambda: box.c.staking.request_unstake(1, sender=addr(box, 0))) == (
        "StakeTooLow",
        (999, 1000),
    )  # a validator cannot drop below the minimum
    assert revert_of(lambda: box.c.staking.withdraw(sender=user)) == ("NothingToWithdraw", (user,))


# ---------------------------------------------------------------- validators


def test_register_waits_out_the_activation_delay_then_counts(box):
    user = addr(box, 3)
    assert revert_of(lambda: box.c.staking.register_validator(sender=user)) == ("StakeTooLow", (0, 1000))
    box.approve_and_stake(user, 1500)
    receipt = box.c.staking.register_validator(sender=user)
    activates_at = chain_now(box.w3) + 20
    assert box.c.staking.events("ValidatorRegistered", receipt) == [
        {"validator": user, "stake": 1500, "activatesAt": activates_at}
    ]
    assert not box.c.staking.is_validator(user)
    assert box.c.staking.totals()["totalValidatorStake"] == 6000  # not counted yet
    assert revert_of(lambda: box.c.staking.register_validator(sender=user)) == ("AlreadyValidator", (user,))
    assert revert_of(lambda: box.c.staking.activate_validator(user, sender=user)) == (
        "ActivationPending",
        (user, activates_at, ANY),
    )
    assert revert_of(lambda: box.c.staking.activate_validator(addr(box, 4), sender=user)) == (
        "NotRegistered",
        (addr(box, 4),),
    )
    advance_time(box.w3, 20)
    receipt = box.c.staking.activate_validator(user, sender=addr(box, 5))  # anyone may activate
    assert box.c.staking.events("ValidatorActivated", receipt) == [{"validator": user, "stake": 1500}]
    assert box.c.staking.is_validator(user)
    assert box.c.staking.totals()["totalValidatorStake"] == 7500
    assert revert_of(lambda: box.c.staking.activate_validator(user, sender=user)) == ("AlreadyValidator", (user,))
    box.approve_and_stake(user, 100)  # a validator's new stake counts toward the validator total
    assert box.c.staking.totals()["totalValidatorStake"] == 7600
    receipt = box.c.staking.deregister_validator(sender=user)
    assert box.c.staking.events("ValidatorDeregistered", receipt) == [{"validator": user}]
    assert box.c.staking.totals() == {
        "totalStaked": 7600,
        "totalPending": 0,
        "totalValidatorStake": 6000,
        "validatorCount": 3,
    }
    assert revert_of(lambda: box.c.staking.deregister_validator(sender=user)) == ("NotAValidator", (user,))


def test_required_quorum_stake_rounds_up(box):
    assert box.c.staking.required_quorum_stake_at(chain_now(box.w3) - 1) == 4001  # ceil(6000 * 6667 / 10000)


def test_stake_snapshots_record_the_past(box):
    user, v2 = addr(box, 3), box.accounts[2]
    box.approve_and_stake(user, 40)
    t0 = chain_now(box.w3)
    advance_time(box.w3, 5)
    box.approve_and_stake(user, 60)
    box.approve_and_stake(v2, 500)
    t1 = chain_now(box.w3)
    assert box.c.staking.stake_at(user, t0) == 40
    assert box.c.staking.stake_at(user, t1) == 100
    assert box.c.staking.stake_at(user, t0 - 1) == 0
    assert box.c.staking.validator_stake_at(user, t1) == 0  # not a validator: no quorum weight
    assert box.c.staking.validator_stake_at(v2.address, t0) == 3000
    assert box.c.staking.validator_stake_at(v2.address, t1) == 3500
    assert box.c.staking.total_validator_stake_at(t0) == 6000
    assert box.c.staking.total_validator_stake_at(t1) == 6500


# ---------------------------------------------------------------- quorum


def snap(box):
    return chain_now(box.w3) - 1


def test_quorum_accepts_enough_stake_at_the_snapshot_and_returns_it(box):
    v0, v1, v2 = box.accounts[:3]
    t = snap(box)
    digest = box.c.staking.slash_digest(addr(box, 3), 1, EVIDENCE, t)
    sigs = slash_sigs(box, [v1, v2], addr(box, 3), 1, t)
    assert box.c.staking.require_quorum_at(digest, sigs, t) == 5000


def test_quorum_rejects_below_quorum_duplicates_unsorted_forged_and_empty(box):
    v0, v1, v2 = box.accounts[:3]
    offender, t = addr(box, 3), snap(box)
    digest = box.c.staking.slash_digest(offender, 1, EVIDENCE, t)
    assert revert_of(
        lambda: box.c.staking.require_quorum_at(digest, slash_sigs(box, [v0, v2], offender, 1, t), t)
    ) == ("QuorumNotReached", (4000, 4001))
    one = slash_sigs(box, [v2], offender, 1, t)[0]
    assert revert_of(lambda: box.c.staking.require_quorum_at(digest, [one, one], t)) == (
        "SignersNotSorted",
        (v2.address, v2.address),
    )
    ordered = slash_sigs(box, [v1, v2], offender, 1, t)
    lo, hi = sorted([v1.address, v2.address], key=lambda a: int(a, 16))
    assert revert_of(lambda: box.c.staking.require_quorum_at(digest, ordered[::-1], t)) == (
        "SignersNotSorted",
        (hi, lo),
    )
    outsider = box.accounts[4]
    assert revert_of(
        lambda: box.c.staking.require_quorum_at(digest, slash_sigs(box, [outsider], offender, 1, t), t)
    ) == ("NotAValidator", (outsider.address,))
    assert revert_of(lambda: box.c.staking.require_quorum_at(digest, [], t)) == ("NoSignatures", ())
    assert revert_of(lambda: box.c.staking.require_quorum_at(digest, [b"abc"], t)) == (
        "ECDSAInvalidSignatureLength",
        (3,),
    )


def test_snapshot_must_be_past_and_younger_than_the_unbonding_delay(box):
    v1, v2 = box.accounts[1:3]
    now = chain_now(box.w3)
    sigs = slash_sigs(box, [v1, v2], addr(box, 3), 1, now)
    assert revert_of(
        lambda: box.c.staking.require_quorum_at(
            box.c.staking.slash_digest(addr(box, 3), 1, EVIDENCE, now + 5), sigs, now + 5
        )
    ) == ("SnapshotNotPast", (ANY, ANY))
    advance_time(box.w3, 150)
    assert revert_of(
        lambda: box.c.staking.require_quorum_at(box.c.staking.slash_digest(addr(box, 3), 1, EVIDENCE, now), sigs, now)
    ) == ("SnapshotTooOld", (now, ANY))


def test_a_newcomer_that_registers_counts_at_no_past_snapshot(box):
    """Stake-heavy newcomer: twice the validators' stake, registers and signs alone at once: refused."""
    newcomer = box.accounts[4]
    box.c.token.transfer(newcomer.address, 12_000, sender=box.deployer)
    box.approve_and_stake(newcomer, 12_000)
    box.c.staking.register_validator(sender=newcomer.address)
    advance_time(box.w3, 2)
    t = snap(box)
    digest = box.c.staking.slash_digest(addr(box, 3), 1, EVIDENCE, t)
    assert revert_of(
        lambda: box.c.staking.require_quorum_at(digest, slash_sigs(box, [newcomer], addr(box, 3), 1, t), t)
    ) == ("NotAValidator", (newcomer.address,))


# ---------------------------------------------------------------- slashing


def test_slash_takes_bps_of_active_stake_to_treasury(box):
    v0, v1, v2 = box.accounts[:3]
    offender = addr(box, 3)
    box.approve_and_stake(offender, 800)
    t = chain_now(box.w3)
    advance_time(box.w3, 1)
    sigs = slash_sigs(box, [v1, v2], offender, 2_500, t)
    receipt = box.c.staking.slash(offender, 2_500, EVIDENCE, t, sigs, sender=addr(box, 5))
    assert box.c.staking.events("Slashed", receipt) == [
        {"offender": offender, "amount": 200, "bps": 2_500, "evidence": EVIDENCE, "treasury": TREASURY}
    ]
    assert box.c.token.balance_of(TREASURY) == 200
    assert box.c.staking.stake_of(offender) == 600
    assert box.c.staking.get_votes(offender) == 600
    assert box.c.staking.evidence_used(EVIDENCE)
    assert revert_of(lambda: box.c.staking.slash(offender, 2_500, EVIDENCE, t, sigs, sender=addr(box, 5))) == (
        "EvidenceAlreadyUsed",
        (EVIDENCE,),
    )  # the same signatures cannot be replayed


def test_unstaking_does_not_escape_a_slash_and_slashed_stake_is_never_withdrawable(box):
    v0, v1, v2 = box.accounts[:3]
    offender = addr(box, 3)
    box.approve_and_stake(offender, 800)
    box.c.staking.request_unstake(800, sender=offender)  # everything unbonding: no active stake left
    t = snap(box)
    advance_time(box.w3, 1)
    box.c.staking.slash(offender, 5_000, EVIDENCE, t, slash_sigs(box, [v1, v2], offender, 5_000, t), sender=offender)
    assert box.c.staking.stake_of(offender) == 0
    assert box.c.staking.pending_withdrawal(offender)[0] == 400
    assert box.c.staking.totals()["totalPending"] == 400
    advance_time(box.w3, 100)
    before = box.c.token.balance_of(offender)
    box.c.staking.withdraw(sender=offender)
    assert box.c.token.balance_of(offender) == before + 400  # the slashed 400 never comes back
    assert revert_of(lambda: box.c.staking.withdraw(sender=offender)) == ("NothingToWithdraw", (offender,))


def test_slash_reverts_on_bad_bps_and_nothing_to_slash(box):
    v1, v2 = box.accounts[1:3]
    offender, t = addr(box, 3), snap(box)
    assert revert_of(lambda: box.c.staking.slash(offender, 0, EVIDENCE, t, [], sender=offender)) == (
        "InvalidSlashBps",
        (0,),
    )
    assert revert_of(lambda: box.c.staking.slash(offender, 10_001, EVIDENCE, t, [], sender=offender)) == (
        "InvalidSlashBps",
        (10_001,),
    )
    assert revert_of(
        lambda: box.c.staking.slash(
            offender, 100, EVIDENCE, t, slash_sigs(box, [v1, v2], offender, 100, t), sender=offender
        )
    ) == ("NothingToSlash", (offender,))


def test_stake_jiggling_between_signings_changes_nothing(box):
    """Every validator signs bps at one snapshot, so the cheater moving its stake by 2 wei splits nothing."""
    v0, v1, v2 = box.accounts[:3]
    offender = addr(box, 3)
    box.approve_and_stake(offender, 1000)
    t = snap(box)
    first = sign_slash(v1, box.c.staking.domain(), offender, 5_000, EVIDENCE, t)
    box.approve_and_stake(offender, 2)
    second = sign_slash(v2, box.c.staking.domain(), offender, 5_000, EVIDENCE, t)
    sigs = order_by_signer([(v1.address, first), (v2.address, second)])
    box.c.staking.slash(offender, 5_000, EVIDENCE, t, sigs, sender=offender)
    assert box.c.staking.stake_of(offender) == 501


def test_slashed_validator_below_minimum_leaves_the_set(box):
    v0, v1, v2 = box.accounts[:3]
    t = snap(box)
    receipt = box.c.staking.slash(  # 10 bps of 1000 = 1 token: below the validator minimum
        v0.address, 10, EVIDENCE, t, slash_sigs(box, [v1, v2], v0.address, 10, t), sender=v1.address
    )
    assert box.c.staking.events("ValidatorDeregistered", receipt) == [{"validator": v0.address}]
    assert not box.c.staking.is_validator(v0.address)
    assert box.c.staking.totals()["totalValidatorStake"] == 5000


def test_slash_signed_for_another_chain_or_contract_is_rejected(box):
    v0, v1, v2 = box.accounts[:3]
    offender = addr(box, 3)
    box.approve_and_stake(offender, 800)
    t = snap(box)
    validators = {a.address for a in box.accounts[:3]}
    for domain in (
        staking_domain(1, box.c.staking.address),
        staking_domain(box.w3.eth.chain_id, box.c.ledger.address),
    ):
        sigs = slash_sigs(box, [v1, v2], offender, 100, t, domain=domain)
        with pytest.raises(ChainError) as info:
            box.c.staking.slash(offender, 100, EVIDENCE, t, sigs, sender=offender)
        # the signature recovers to some unrelated address: never a validator
        assert info.value.error_name in {"NotAValidator", "SignersNotSorted"}
        assert not set(info.value.error_args) & validators - {"0x" + "0" * 40}
    assert box.c.staking.stake_of(offender) == 800


def test_set_treasury_only_owner(box):
    new = addr(box, 4)
    assert revert_of(lambda: box.c.staking.set_treasury(new, sender=addr(box, 3))) == (
        "OwnableUnauthorizedAccount",
        (addr(box, 3),),
    )
    assert revert_of(lambda: box.c.staking.set_treasury("0x" + "0" * 40, sender=box.deployer)) == ("ZeroAddress", ())
    receipt = box.c.staking.set_treasury(new, sender=box.deployer)
    assert box.c.staking.events("TreasuryChanged", receipt) == [{"previous": TREASURY, "current": new}]
    assert box.c.staking.param("treasury") == new


def test_constructor_rejects_bad_quorum_and_zero_addresses(box):
    token = box.c.token.address
    assert revert_of(
        lambda: deploy_contract(box.w3, "Staking", token, 1, 1, 1, 10001, TREASURY, box.deployer, sender=box.deployer)
    ) == ("InvalidQuorumBps", (10001,))
    assert revert_of(
        lambda: deploy_contract(
            box.w3, "Staking", token, 1, 1, 1, 5000, "0x" + "0" * 40, box.deployer, sender=box.deployer
        )
    ) == ("ZeroAddress", ())


# ---------------------------------------------------------------- votes


def test_delegate_moves_voting_power_and_past_votes_are_snapshotted(box):
    a, b = addr(box, 3), addr(box, 4)
    box.approve_and_stake(a, 400)
    t0 = chain_now(box.w3)
    advance_time(box.w3, 5)
    box.c.staking.delegate(b, sender=a)
    assert box.c.staking.get_votes(a) == 0
    assert box.c.staking.get_votes(b) == 400
    assert box.c.staking.get_past_votes(a, t0) == 400
    box.approve_and_stake(a, 100)  # new stake follows the chosen delegate
    assert box.c.staking.get_votes(b) == 500
    assert revert_of(lambda: box.c.staking.get_past_votes(a, chain_now(box.w3) + 10)) == (
        "ERC5805FutureLookup",
        (chain_now(box.w3) + 10, ANY),
    )
