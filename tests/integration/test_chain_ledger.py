"""ContributionLedger on eth-tester: funding, quorum-signed periods, challenge window, voiding, claims.

Replayed, forged, below-quorum and duplicate-signer signature sets, double claims, wrong proofs and
early claims all revert with their exact custom errors.
"""

import pytest

from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import DeployParams
from coordination.chain.merkle import StandardMerkleTree
from coordination.chain.sandbox import ANY, Sandbox, expect_revert, register_validators
from coordination.chain.signing import (
    ledger_domain,
    period_digest,
    quorum_signatures,
    recover_period_signers,
    run_key,
    sign_period,
    sign_void,
)
from coordination.errors import ChainError

pytestmark = pytest.mark.chain

PARAMS = DeployParams(unbonding_delay=100, min_validator_stake=1000, validator_quorum_bps=6667, challenge_window=50)
RUN = "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
POOL = 10_000
LEAF_TYPES = ["address", "uint256"]


@pytest.fixture(scope="module")
def box():
    box = Sandbox.create(accounts=6, params=PARAMS)
    v0, v1, v2 = box.accounts[:3]
    register_validators(box, {v0: 1000, v1: 2000, v2: 3000})
    box.c.token.approve(box.c.ledger.address, POOL, sender=box.deployer)
    box.c.ledger.fund(POOL, sender=box.deployer)
    return box


@pytest.fixture(autouse=True)
def fresh(box):
    snap = box.snapshot()
    yield
    box.revert(snap)


def peers(box):
    return [box.accounts[3].address, box.accounts[4].address, box.accounts[5].address]


def make_tree(box, units=(10, 20, 30)):
    return StandardMerkleTree.of(list(zip(peers(box), units, strict=True)), LEAF_TYPES)


def period_sigs(box, signers, run, period, root, total, reward, domain=None):
    domain = domain or box.c.ledger.domain()
    return quorum_signatures(signers, lambda a: sign_period(a, domain, run, period, root, total, reward))


def settle(box, tree, total=60, reward=600, period=0, run=RUN):
    v1, v2 = box.accounts[1:3]
    sigs = period_sigs(box, [v1, v2], run, period, tree.root, total, reward)
    return box.c.ledger.submit_period(run, period, tree.root, total, reward, sigs, sender=box.deployer)


def assert_ledger_backed(box):
    assert (
        box.c.token.balance_of(box.c.ledger.address) == box.c.ledger.reward_pool() + box.c.ledger.outstanding_rewards()
    )


# ---------------------------------------------------------------- funding and digests


def test_fund_adds_to_pool_and_zero_reverts(box):
    box.c.token.approve(box.c.ledger.address, 5, sender=box.deployer)
    receipt = box.c.ledger.fund(5, sender=box.deployer)
    assert box.c.ledger.events("RewardPoolFunded", receipt) == [{"funder": box.deployer, "amount": 5}]
    assert box.c.ledger.reward_pool() == POOL + 5
    with expect_revert("ZeroAmount"):
        box.c.ledger.fund(0, sender=box.deployer)


def test_python_typed_data_hash_equals_contract_digest(box):
    root = make_tree(box).root
    assert period_digest(box.c.ledger.domain(), RUN, 7, root, 60, 600) == box.c.ledger.period_digest(
        RUN, 7, root, 60, 600
    )


# ---------------------------------------------------------------- submitPeriod


def test_submit_period_reserves_reward_and_records_root(box):
    tree = make_tree(box)
    receipt = settle(box, tree)
    ends = chain_now(box.w3) + 50
    assert box.c.ledger.events("PeriodSubmitted", receipt) == [
        {
            "runId": run_key(RUN),
            "period": 0,
            "root": tree.root,
            "totalUnits": 60,
            "reward": 600,
            "challengeEndsAt": ends,
        }
    ]
    info = box.c.ledger.get_period(RUN, 0)
    assert (info.root, info.total_units, info.reward, info.paid, info.challenge_ends_at, info.voided) == (
        tree.root,
        60,
        600,
        0,
        ends,
        False,
    )
    assert box.c.ledger.reward_pool() == POOL - 600
    assert box.c.ledger.outstanding_rewards() == 600
    assert_ledger_backed(box)


def test_signers_recover_off_chain(box):
    v1, v2 = box.accounts[1:3]
    root = make_tree(box).root
    sigs = period_sigs(box, [v1, v2], RUN, 0, root, 60, 600)
    got = recover_period_signers(sigs, box.c.ledger.domain(), RUN, 0, root, 60, 600)
    assert got == sorted([v1.address, v2.address], key=lambda a: int(a, 16))


def test_submit_replay_and_bad_inputs_revert(box):
    v1, v2 = box.accounts[1:3]
    tree = make_tree(box)
    sigs = period_sigs(box, [v1, v2], RUN, 0, tree.root, 60, 600)
    box.c.ledger.submit_period(RUN, 0, tree.root, 60, 600, sigs, sender=box.deployer)
    with expect_revert("PeriodAlreadySubmitted", run_key(RUN), 0):  # replay of the very same message
        box.c.ledger.submit_period(RUN, 0, tree.root, 60, 600, sigs, sender=box.deployer)
    with expect_revert("ZeroRoot"):
        box.c.ledger.submit_period(RUN, 1, bytes(32), 60, 600, sigs, sender=box.deployer)
    with expect_revert("ZeroTotalUnits"):
        box.c.ledger.submit_period(RUN, 1, tree.root, 0, 600, sigs, sender=box.deployer)
    with expect_revert("InsufficientRewardPool", POOL - 600, POOL):
        box.c.ledger.submit_period(RUN, 1, tree.root, 60, POOL, sigs, sender=box.deployer)


@pytest.mark.parametrize("what", ["other period", "other run", "other chain", "other contract", "other reward"])
def test_signatures_do_not_transfer_to_another_message(box, what):
    """Signatures for period 0 of RUN on this ledger recover to strangers for any other message."""
    v1, v2 = box.accounts[1:3]
    root = make_tree(box).root
    run, period, reward, domain = RUN, 0, 600, box.c.ledger.domain()
    if what == "other period":
        period = 1
    elif what == "other run":
        run = "bafy-some-other-run"
    elif what == "other chain":
        domain = ledger_domain(1, box.c.ledger.address)
    elif what == "other contract":
        domain = ledger_domain(box.w3.eth.chain_id, box.c.staking.address)
    else:
        reward = 601
    sigs = period_sigs(box, [v1, v2], run, period, root, 60, reward, domain=domain)
    with pytest.raises(ChainError) as info:
        box.c.ledger.submit_period(RUN, 0, root, 60, 600, sigs, sender=box.deployer)
    assert info.value.error_name in {"NotAValidator", "SignersNotSorted"}
    assert not {a.address for a in box.accounts[:3]} & set(info.value.error_args)


def test_submit_below_quorum_duplicate_and_forged_signers_revert(box):
    v0, v1, v2 = box.accounts[:3]
    root = make_tree(box).root
    with expect_revert("QuorumNotReached", 4000, 4001):
        box.c.ledger.submit_period(
            RUN, 0, root, 60, 600, period_sigs(box, [v0, v2], RUN, 0, root, 60, 600), sender=box.deployer
        )
    one = period_sigs(box, [v2], RUN, 0, root, 60, 600)[0]
    with expect_revert("SignersNotSorted", v2.address, v2.address):
        box.c.ledger.submit_period(RUN, 0, root, 60, 600, [one, one], sender=box.deployer)
    forger = box.accounts[3]
    with expect_revert("NotAValidator", forger.address):
        box.c.ledger.submit_period(
            RUN, 0, root, 60, 600, period_sigs(box, [forger], RUN, 0, root, 60, 600), sender=box.deployer
        )


# ---------------------------------------------------------------- claim


def test_claims_pay_exact_shares_once_after_the_window(box):
    tree = make_tree(box)
    settle(box, tree)
    ends = box.c.ledger.get_period(RUN, 0).challenge_ends_at
    with expect_revert("ChallengeWindowOpen", ends, ANY):
        box.c.ledger.claim(RUN, 0, peers(box)[0], 10, tree.proof(0), sender=box.deployer)
    advance_time(box.w3, 50)
    for i, (units, share) in enumerate([(10, 100), (20, 200), (30, 300)]):
        peer = peers(box)[i]
        before = box.c.token.balance_of(peer)
        receipt = box.c.ledger.claim(RUN, 0, peer, units, tree.proof(i), sender=box.deployer)  # anyone may relay
        assert box.c.ledger.events("RewardClaimed", receipt) == [
            {"runId": run_key(RUN), "period": 0, "peer": peer, "units": units, "amount": share}
        ]
        assert box.c.token.balance_of(peer) == before + share
        assert box.c.ledger.is_claimed(RUN, 0, peer)
        assert_ledger_backed(box)
    assert box.c.ledger.get_period(RUN, 0).paid == 600
    assert box.c.ledger.outstanding_rewards() == 0
    with expect_revert("AlreadyClaimed", run_key(RUN), 0, peers(box)[0]):
        box.c.ledger.claim(RUN, 0, peers(box)[0], 10, tree.proof(0), sender=box.deployer)


def test_wrong_proofs_and_unknown_periods_revert(box):
    tree = make_tree(box)
    settle(box, tree)
    advance_time(box.w3, 50)
    peer = peers(box)[0]
    with expect_revert("InvalidProof", run_key(RUN), 0, peer, 11):  # inflated units
        box.c.ledger.claim(RUN, 0, peer, 11, tree.proof(0), sender=peer)
    with expect_revert("InvalidProof", run_key(RUN), 0, peer, 10):  # someone else's proof
        box.c.ledger.claim(RUN, 0, peer, 10, tree.proof(1), sender=peer)
    with expect_revert("PeriodNotFound", run_key(RUN), 1):
        box.c.ledger.claim(RUN, 1, peer, 10, tree.proof(0), sender=peer)
    with expect_revert("PeriodNotFound", run_key("other"), 0):  # the proof is bound to its run's root
        box.c.ledger.claim("other", 0, peer, 10, tree.proof(0), sender=peer)


def test_rounding_dust_stays_reserved(box):
    tree = make_tree(box, units=(1, 1, 1))
    settle(box, tree, total=3, reward=100)
    advance_time(box.w3, 50)
    for i in range(3):
        box.c.ledger.claim(RUN, 0, peers(box)[i], 1, tree.proof(i), sender=box.deployer)
    assert box.c.ledger.get_period(RUN, 0).paid == 99
    assert box.c.ledger.outstanding_rewards() == 1
    assert_ledger_backed(box)


def test_a_root_over_its_total_cannot_pay_more_than_the_reward(box):
    tree = make_tree(box, units=(50, 50, 50))  # validators signed an inconsistent table: 150 units, total 60
    settle(box, tree, total=60, reward=600)
    advance_time(box.w3, 50)
    box.c.ledger.claim(RUN, 0, peers(box)[0], 50, tree.proof(0), sender=box.deployer)
    with expect_revert("RewardExceeded", 1000, 600):
        box.c.ledger.claim(RUN, 0, peers(box)[1], 50, tree.proof(1), sender=box.deployer)


# ---------------------------------------------------------------- void


def void_sigs(box, signers, period=0, run=RUN):
    domain = box.c.ledger.domain()
    return quorum_signatures(signers, lambda a: sign_void(a, domain, run, period))


def test_void_in_window_returns_reward_and_blocks_claims_and_resubmission(box):
    v0, v1, v2 = box.accounts[:3]
    tree = make_tree(box)
    settle(box, tree)
    with expect_revert("QuorumNotReached", 3000, 4001):
        box.c.ledger.void_period(RUN, 0, void_sigs(box, [v0, v1]), sender=box.deployer)
    receipt = box.c.ledger.void_period(RUN, 0, void_sigs(box, [v1, v2]), sender=box.deployer)
    assert box.c.ledger.events("PeriodVoided", receipt) == [
        {"runId": run_key(RUN), "period": 0, "returnedToPool": 600}
    ]
    assert box.c.ledger.reward_pool() == POOL
    assert box.c.ledger.outstanding_rewards() == 0
    assert_ledger_backed(box)
    advance_time(box.w3, 50)
    with expect_revert("PeriodIsVoided", run_key(RUN), 0):
        box.c.ledger.claim(RUN, 0, peers(box)[0], 10, tree.proof(0), sender=box.deployer)
    with expect_revert("PeriodIsVoided", run_key(RUN), 0):
        box.c.ledger.void_period(RUN, 0, void_sigs(box, [v1, v2]), sender=box.deployer)
    with expect_revert("PeriodAlreadySubmitted", run_key(RUN), 0):
        settle(box, tree)


def test_void_after_window_and_of_unknown_period_revert(box):
    v1, v2 = box.accounts[1:3]
    settle(box, make_tree(box))
    ends = box.c.ledger.get_period(RUN, 0).challenge_ends_at
    with expect_revert("PeriodNotFound", run_key(RUN), 3):
        box.c.ledger.void_period(RUN, 3, void_sigs(box, [v1, v2], period=3), sender=box.deployer)
    advance_time(box.w3, 50)
    with expect_revert("ChallengeWindowClosed", ends, ANY):
        box.c.ledger.void_period(RUN, 0, void_sigs(box, [v1, v2]), sender=box.deployer)
