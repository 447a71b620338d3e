"""ContributionLedger on eth-tester: funding, quorum-signed periods at a stake snapshot, epoch ranges that never
overlap, the reward cap, peer bonds, the challenge and claim windows, voiding and sweeping.

Replayed, forged, below-quorum and duplicate-signer signature sets, double claims, wrong proofs, early and late
claims all revert with their exact custom errors.
"""

from types import SimpleNamespace

import pytest

from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import DeployParams
from coordination.chain.eip712 import (
    PeriodSettlement,
    ledger_domain,
    period_digest,
    quorum_signatures,
    recover_period_signers,
    run_key,
    sign_period,
    sign_void,
)
from coordination.chain.merkle import StandardMerkleTree
from coordination.chain.sandbox import ANY, Sandbox, register_validators, revert_of
from coordination.errors import ChainError

pytestmark = pytest.mark.chain

PARAMS = DeployParams(
    unbonding_delay=1000,
    activation_delay=10,
    min_validator_stake=1000,
    validator_quorum_bps=6667,
    challenge_window=50,
    claim_window=100,
    max_period_reward=5_000,
    min_peer_bond=5,
)
RUN = "bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
POOL = 10_000
LEAF_TYPES = ["address", "uint256"]


@pytest.fixture(scope="module")
def box():
    box = Sandbox.create(accounts=7, params=PARAMS)
    v0, v1, v2 = box.accounts[:3]
    for peer in box.accounts[3:6]:
        box.approve_and_stake(peer, 5)  # the peers' bonds (account 6 holds none)
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


def make_tree(box, units=(10, 20, 30), who=None):
    return StandardMerkleTree.of(list(zip(who or peers(box), units, strict=True)), LEAF_TYPES)


def settlement(box, root, total=60, reward=600, period=0, first=0, last=9, run=RUN, snapshot=None):
    snapshot = chain_now(box.w3) - 1 if snapshot is None else snapshot
    return PeriodSettlement(run_key(run), period, first, last, root, total, reward, snapshot)


def period_sigs(box, signers, s, domain=None):
    domain = domain or box.c.ledger.domain()
    return quorum_signatures(signers, lambda a: sign_period(a, domain, s))


def settle(box, tree, **kw):
    s = settlement(box, tree.root, **kw)
    return box.c.ledger.submit_period(s, period_sigs(box, box.accounts[1:3], s), sender=box.deployer)


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
    assert revert_of(lambda: box.c.ledger.fund(0, sender=box.deployer)) == ("ZeroAmount", ())


def test_python_typed_data_hash_equals_contract_digest(box):
    s = settlement(box, make_tree(box).root, period=7, first=3, last=5)
    assert period_digest(box.c.ledger.domain(), s) == box.c.ledger.period_digest(s)


# ---------------------------------------------------------------- submitPeriod


def test_submit_period_reserves_reward_and_records_range_and_snapshot(box):
    tree = make_tree(box)
    s = settlement(box, tree.root)
    receipt = box.c.ledger.submit_period(s, period_sigs(box, box.accounts[1:3], s), sender=box.deployer)
    ends = chain_now(box.w3) + 50
    assert box.c.ledger.events("PeriodSubmitted", receipt) == [
        {
            "runId": run_key(RUN),
            "period": 0,
            "firstEpoch": 0,
            "lastEpoch": 9,
            "root": tree.root,
            "totalUnits": 60,
            "reward": 600,
            "challengeEndsAt": ends,
        }
    ]
    info = box.c.ledger.get_period(RUN, 0)
    assert (info.root, info.total_units, info.reward, info.paid, info.first_epoch, info.last_epoch) == (
        tree.root,
        60,
        600,
        0,
        0,
        9,
    )
    assert (info.snapshot, info.challenge_ends_at, info.voided, info.swept) == (s.snapshot, ends, False, False)
    assert box.c.ledger.next_epoch(RUN) == 10
    assert box.c.ledger.reward_pool() == POOL - 600
    assert box.c.ledger.outstanding_rewards() == 600
    assert_ledger_backed(box)


def test_signers_recover_off_chain(box):
    v1, v2 = box.accounts[1:3]
    s = settlement(box, make_tree(box).root)
    got = recover_period_signers(period_sigs(box, [v1, v2], s), box.c.ledger.domain(), s)
    assert got == sorted([v1.address, v2.address], key=lambda a: int(a, 16))


def test_submit_replay_and_bad_inputs_revert(box):
    v1, v2 = box.accounts[1:3]
    tree = make_tree(box)
    s = settlement(box, tree.root)
    sigs = period_sigs(box, [v1, v2], s)
    box.c.ledger.submit_period(s, sigs, sender=box.deployer)
    assert revert_of(lambda: box.c.ledger.submit_period(s, sigs, sender=box.deployer)) == (
        "PeriodAlreadySubmitted",
        (run_key(RUN), 0),
    )  # replay of the very same message
    assert revert_of(
        lambda: box.c.ledger.submit_period(settlement(box, bytes(32), period=1), sigs, sender=box.deployer)
    ) == ("ZeroRoot", ())
    assert revert_of(
        lambda: box.c.ledger.submit_period(settlement(box, tree.root, total=0, period=1), sigs, sender=box.deployer)
    ) == ("ZeroTotalUnits", ())
    bad_range = SimpleNamespace(as_tuple=lambda: (run_key(RUN), 1, 12, 11, tree.root, 60, 600, s.snapshot))
    assert revert_of(lambda: box.c.ledger.submit_period(bad_range, sigs, sender=box.deployer)) == (
        "InvalidEpochRange",
        (12, 11),
    )


def test_the_same_epochs_cannot_be_settled_twice(box):
    """Double settlement: the verdicts of epochs 0-9 submitted again as period 1 are refused."""
    tree = make_tree(box)
    settle(box, tree, period=0, first=0, last=9)
    for first, last in ((0, 9), (9, 12), (5, 5)):
        s = settlement(box, tree.root, period=1, first=first, last=last)
        assert revert_of(
            box.c.ledger.submit_period, s, period_sigs(box, box.accounts[1:3], s), sender=box.deployer
        ) == ("EpochRangeOverlaps", (run_key(RUN), first, 10))
    settle(box, tree, period=1, first=10, last=19)  # the next range is fine
    assert box.c.ledger.next_epoch(RUN) == 20


def test_reward_above_the_cap_and_above_the_pool_revert(box):
    root = make_tree(box).root
    s = settlement(box, root, reward=5_001)
    assert revert_of(box.c.ledger.submit_period, s, period_sigs(box, box.accounts[1:3], s), sender=box.deployer) == (
        "RewardAboveCap",
        (5_001, 5_000),
    )
    settle(box, make_tree(box), reward=5_000, first=0, last=0)
    settle(box, make_tree(box), reward=5_000, period=1, first=1, last=1)
    s = settlement(box, root, reward=1, period=2, first=2, last=2)
    assert revert_of(box.c.ledger.submit_period, s, period_sigs(box, box.accounts[1:3], s), sender=box.deployer) == (
        "InsufficientRewardPool",
        (0, 1),
    )


@pytest.mark.parametrize(
    "what", ["other period", "other run", "other chain", "other contract", "other reward", "other range"]
)
def test_signatures_do_not_transfer_to_another_message(box, what):
    """Signatures for period 0 of RUN on this ledger recover to strangers for any other message."""
    v1, v2 = box.accounts[1:3]
    root = make_tree(box).root
    s = settlement(box, root)
    kw, domain = {}, box.c.ledger.domain()
    if what == "other period":
        kw = dict(period=1)
    elif what == "other run":
        kw = dict(run="bafy-some-other-run")
    elif what == "other chain":
        domain = ledger_domain(1, box.c.ledger.address)
    elif what == "other contract":
        domain = ledger_domain(box.w3.eth.chain_id, box.c.staking.address)
    elif what == "other reward":
        kw = dict(reward=601)
    else:
        kw = dict(last=10)
    signed = settlement(box, root, snapshot=s.snapshot, **kw)
    with pytest.raises(ChainError) as info:
        box.c.ledger.submit_period(s, period_sigs(box, [v1, v2], signed, domain=domain), sender=box.deployer)
    assert info.value.error_name in {"NotAValidator", "SignersNotSorted"}
    assert not {a.address for a in box.accounts[:3]} & set(info.value.error_args)


def test_submit_below_quorum_duplicate_and_forged_signers_revert(box):
    v0, v1, v2 = box.accounts[:3]
    s = settlement(box, make_tree(box).root)
    assert revert_of(lambda: box.c.ledger.submit_period(s, period_sigs(box, [v0, v2], s), sender=box.deployer)) == (
        "QuorumNotReached",
        (4000, 4001),
    )
    one = period_sigs(box, [v2], s)[0]
    assert revert_of(lambda: box.c.ledger.submit_period(s, [one, one], sender=box.deployer)) == (
        "SignersNotSorted",
        (v2.address, v2.address),
    )
    forger = box.accounts[3]
    assert revert_of(lambda: box.c.ledger.submit_period(s, period_sigs(box, [forger], s), sender=box.deployer)) == (
        "NotAValidator",
        (forger.address,),
    )


def test_quorum_is_counted_at_the_snapshot_not_now(box):
    """v2 doubling its stake after the snapshot adds nothing to a signature set at that snapshot."""
    v0, v1, v2 = box.accounts[:3]
    s = settlement(box, make_tree(box).root)
    box.approve_and_stake(v2, 3000)
    advance_time(box.w3, 1)
    assert revert_of(lambda: box.c.ledger.submit_period(s, period_sigs(box, [v0, v2], s), sender=box.deployer)) == (
        "QuorumNotReached",
        (4000, 4001),
    )


# ---------------------------------------------------------------- claim


def test_claims_pay_exact_shares_once_after_the_window(box):
    tree = make_tree(box)
    settle(box, tree)
    ends = box.c.ledger.get_period(RUN, 0).challenge_ends_at
    assert revert_of(lambda: box.c.ledger.claim(RUN, 0, peers(box)[0], 10, tree.proof(0), sender=box.deployer)) == (
        "ChallengeWindowOpen",
        (ends, ANY),
    )
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
    assert revert_of(lambda: box.c.ledger.claim(RUN, 0, peers(box)[0], 10, tree.proof(0), sender=box.deployer)) == (
        "AlreadyClaimed",
        (run_key(RUN), 0, peers(box)[0]),
    )


def test_a_peer_without_a_bond_at_the_snapshot_is_not_paid(box):
    unbonded = box.accounts[6].address
    tree = make_tree(box, units=(10, 20), who=[peers(box)[0], unbonded])
    s = settlement(box, tree.root, total=30)
    box.approve_and_stake(unbonded, 5)  # bonding after the snapshot is too late
    advance_time(box.w3, 1)
    box.c.ledger.submit_period(s, period_sigs(box, box.accounts[1:3], s), sender=box.deployer)
    advance_time(box.w3, 50)
    index = [v[0] for v in tree.values].index(unbonded)
    assert revert_of(lambda: box.c.ledger.claim(RUN, 0, unbonded, 20, tree.proof(index), sender=box.deployer)) == (
        "PeerNotBonded",
        (unbonded, 0, 5),
    )


def test_wrong_proofs_and_unknown_periods_revert(box):
    tree = make_tree(box)
    settle(box, tree)
    advance_time(box.w3, 50)
    peer = peers(box)[0]
    assert revert_of(lambda: box.c.ledger.claim(RUN, 0, peer, 11, tree.proof(0), sender=peer)) == (
        "InvalidProof",
        (run_key(RUN), 0, peer, 11),
    )  # inflated units
    assert revert_of(lambda: box.c.ledger.claim(RUN, 0, peer, 10, tree.proof(1), sender=peer)) == (
        "InvalidProof",
        (run_key(RUN), 0, peer, 10),
    )  # someone else's proof
    assert revert_of(lambda: box.c.ledger.claim(RUN, 1, peer, 10, tree.proof(0), sender=peer)) == (
        "PeriodNotFound",
        (run_key(RUN), 1),
    )
    assert revert_of(lambda: box.c.ledger.claim("other", 0, peer, 10, tree.proof(0), sender=peer)) == (
        "PeriodNotFound",
        (run_key("other"), 0),
    )  # the proof is bound to its run's root


def test_a_root_over_its_total_cannot_pay_more_than_its_units(box):
    tree = make_tree(box, units=(50, 50, 50))  # validators signed an inconsistent table: 150 units, total 60
    settle(box, tree, total=60, reward=600)
    advance_time(box.w3, 50)
    box.c.ledger.claim(RUN, 0, peers(box)[0], 50, tree.proof(0), sender=box.deployer)
    assert revert_of(lambda: box.c.ledger.claim(RUN, 0, peers(box)[1], 50, tree.proof(1), sender=box.deployer)) == (
        "UnitsExceedTotal",
        (100, 60),
    )


# ---------------------------------------------------------------- expiry and sweep


def test_unclaimed_dust_and_shares_return_to_the_pool_after_the_claim_window(box):
    tree = make_tree(box, units=(1, 1, 1))
    settle(box, tree, total=3, reward=100)
    ends = box.c.ledger.get_period(RUN, 0).challenge_ends_at
    advance_time(box.w3, 50)
    for i in range(2):
        box.c.ledger.claim(RUN, 0, peers(box)[i], 1, tree.proof(i), sender=box.deployer)
    assert revert_of(lambda: box.c.ledger.sweep(RUN, 0, sender=box.deployer)) == ("ClaimWindowOpen", (ends + 100, ANY))
    advance_time(box.w3, 100)
    assert revert_of(lambda: box.c.ledger.claim(RUN, 0, peers(box)[2], 1, tree.proof(2), sender=box.deployer)) == (
        "ClaimWindowClosed",
        (ends + 100, ANY),
    )
    receipt = box.c.ledger.sweep(RUN, 0, sender=peers(box)[0])  # anyone may sweep
    assert box.c.ledger.events("PeriodSweptToPool", receipt) == [
        {"runId": run_key(RUN), "period": 0, "returnedToPool": 34}  # 100 - 2 * 33
    ]
    assert box.c.ledger.reward_pool() == POOL - 66
    assert box.c.ledger.outstanding_rewards() == 0
    assert_ledger_backed(box)
    assert revert_of(lambda: box.c.ledger.sweep(RUN, 0, sender=box.deployer)) == ("PeriodSwept", (run_key(RUN), 0))


# ---------------------------------------------------------------- void


def void_sigs(box, signers, period=0, run=RUN, snapshot=None):
    domain = box.c.ledger.domain()
    snapshot = chain_now(box.w3) - 1 if snapshot is None else snapshot
    return snapshot, quorum_signatures(signers, lambda a: sign_void(a, domain, run, period, snapshot))


def test_void_in_window_returns_reward_blocks_claims_and_frees_the_range(box):
    v0, v1, v2 = box.accounts[:3]
    tree = make_tree(box)
    settle(box, tree)
    t, sigs = void_sigs(box, [v0, v1])
    assert revert_of(lambda: box.c.ledger.void_period(RUN, 0, t, sigs, sender=box.deployer)) == (
        "QuorumNotReached",
        (3000, 4001),
    )
    t, sigs = void_sigs(box, [v1, v2])
    receipt = box.c.ledger.void_period(RUN, 0, t, sigs, sender=box.deployer)
    assert box.c.ledger.events("PeriodVoided", receipt) == [
        {"runId": run_key(RUN), "period": 0, "returnedToPool": 600}
    ]
    assert box.c.ledger.reward_pool() == POOL
    assert box.c.ledger.outstanding_rewards() == 0
    assert box.c.ledger.next_epoch(RUN) == 0  # the voided range can be settled again, as another period
    assert_ledger_backed(box)
    advance_time(box.w3, 50)
    assert revert_of(lambda: box.c.ledger.claim(RUN, 0, peers(box)[0], 10, tree.proof(0), sender=box.deployer)) == (
        "PeriodIsVoided",
        (run_key(RUN), 0),
    )
    assert revert_of(lambda: box.c.ledger.void_period(RUN, 0, t, sigs, sender=box.deployer)) == (
        "PeriodIsVoided",
        (run_key(RUN), 0),
    )
    assert revert_of(lambda: settle(box, tree)) == ("PeriodAlreadySubmitted", (run_key(RUN), 0))
    settle(box, tree, period=1)


def test_void_after_window_and_of_unknown_period_revert(box):
    v1, v2 = box.accounts[1:3]
    settle(box, make_tree(box))
    ends = box.c.ledger.get_period(RUN, 0).challenge_ends_at
    t, sigs = void_sigs(box, [v1, v2], period=3)
    assert revert_of(lambda: box.c.ledger.void_period(RUN, 3, t, sigs, sender=box.deployer)) == (
        "PeriodNotFound",
        (run_key(RUN), 3),
    )
    advance_time(box.w3, 50)
    t, sigs = void_sigs(box, [v1, v2])
    assert revert_of(lambda: box.c.ledger.void_period(RUN, 0, t, sigs, sender=box.deployer)) == (
        "ChallengeWindowClosed",
        (ends, ANY),
    )
