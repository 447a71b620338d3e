"""RunGovernor + RunTimelock + CheckpointRegistry on eth-tester: nominate → fix seed → record eval → propose →
vote → queue → (timelock delay) → execute → lineage; rollback by a later vote.

Voting power is stake at the proposal snapshot: stake added later counts for nothing, and moving stake after
voting cannot buy a second vote. The registry obeys only the timelock; `promote` needs a nominated CID with a
fixed seed and a recorded eval digest; nominations are deduplicated by adapter weights hash.
"""

import pytest
from eth_utils import keccak

from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import DeployParams, deploy_contract
from coordination.chain.eip712 import run_key
from coordination.chain.governance import ProposalState, Support, promotion_proposal, rollback_proposal
from coordination.chain.sandbox import ANY, Sandbox, register_validators, revert_of

pytestmark = pytest.mark.chain

PARAMS = DeployParams(
    unbonding_delay=5,
    challenge_window=1,
    activation_delay=5,
    min_validator_stake=50,
    voting_delay=10,
    voting_period=100,
    proposal_threshold=500,
    quorum_percent=10,
    timelock_delay=50,
)
RUN = "bafy-run-governance"
CID1, CID2 = "bafkreicid1", "bafkreicid2"
W1, W2 = keccak(text="weights 1"), keccak(text="weights 2")
DIGEST = keccak(text="eval attestations")  # a digest nobody recorded
ROOT = keccak(text="eval records root")


@pytest.fixture(scope="module")
def box():
    box = Sandbox.create(accounts=6, params=PARAMS)
    box.approve_and_stake(box.accounts[0], 600)  # proposer, above the 500 threshold
    box.approve_and_stake(box.accounts[1], 100)
    box.approve_and_stake(box.accounts[2], 300)
    register_validators(box, {box.accounts[5]: 50})  # attests evals; total stake 1050 -> quorum 105
    advance_time(box.w3, 1)
    return box


@pytest.fixture(autouse=True)
def fresh(box):
    snap = box.snapshot()
    yield
    box.revert(snap)


def addr(box, i):
    return box.accounts[i].address


def record(box, cid, correct, total, root=ROOT, signers=None, sender=None):
    """Record an eval score with the validators' EvalAttestation signatures (a stake quorum at the last second)."""
    from coordination.chain.eip712 import quorum_signatures, sign_struct
    from coordination.governance.transparent_eval import EVAL_ATTESTATION_FIELDS, eval_domain

    reg = box.c.registry
    seed, t = reg.eval_seed_int(RUN, cid), chain_now(box.w3) - 1
    message = {"checkpoint": cid, "seed": seed, "correct": correct, "total": total, "recordsRoot": root}
    domain = eval_domain(box.w3.eth.chain_id, reg.address)
    sign = lambda a: sign_struct(a, domain, "EvalAttestation", EVAL_ATTESTATION_FIELDS, message)  # noqa: E731
    sigs = quorum_signatures(signers or [box.accounts[5]], sign)
    return reg.record_eval(RUN, cid, correct, total, root, t, sigs, sender=sender or addr(box, 4))


def ready(box, cid, weights, correct=3, total=5):
    """Nominate, let a block pass, fix the seed, record the eval score; returns the eval digest to promote with."""
    box.c.registry.nominate(RUN, cid, weights, sender=addr(box, 3))
    advance_time(box.w3, 1)
    box.c.registry.fix_seed(RUN, cid, sender=addr(box, 4))
    receipt = record(box, cid, correct, total)
    return box.c.registry.events("EvalRecorded", receipt)[0]["evalDigest"]


def open_vote(box, proposal):
    pid = box.c.governor.propose(proposal, sender=addr(box, 0))
    assert box.c.governor.state(pid) == ProposalState.PENDING
    advance_time(box.w3, box.c.governor.voting_delay() + 1)
    assert box.c.governor.state(pid) == ProposalState.ACTIVE
    return pid


def close_vote(box):
    advance_time(box.w3, box.c.governor.voting_period() + 1)


def pass_vote(box, proposal):
    """Propose, vote for, queue, wait the timelock delay; returns the proposal id (ready to execute)."""
    pid = open_vote(box, proposal)
    box.c.governor.cast_vote(pid, Support.FOR, sender=addr(box, 0))
    close_vote(box)
    assert box.c.governor.state(pid) == ProposalState.SUCCEEDED
    box.c.governor.queue(proposal, sender=addr(box, 4))
    assert box.c.governor.state(pid) == ProposalState.QUEUED
    advance_time(box.w3, PARAMS.timelock_delay + 1)
    return pid


def promote_via_vote(box, cid, digest=DIGEST, description=""):
    proposal = promotion_proposal(box.c.registry.address, RUN, cid, digest, description)
    pid = pass_vote(box, proposal)
    return box.c.governor.execute(proposal, sender=addr(box, 4)), pid


# ---------------------------------------------------------------- the happy path


def test_promotion_end_to_end_builds_lineage(box):
    gov, registry = box.c.governor, box.c.registry
    assert registry.current(RUN) is None
    digests = []
    for i, (cid, weights) in enumerate([(CID1, W1), (CID2, W2)]):
        digest = ready(box, cid, weights)
        digests.append(digest)
        proposal = promotion_proposal(registry.address, RUN, cid, digest)
        pid = open_vote(box, proposal)
        gov.cast_vote(pid, Support.FOR, sender=addr(box, 0))
        gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 2), reason="eval too weak")
        assert gov.proposal_votes(pid) == type(gov.proposal_votes(pid))(against=300, for_=600, abstain=0)
        close_vote(box)
        gov.queue(proposal, sender=addr(box, 4))
        advance_time(box.w3, PARAMS.timelock_delay + 1)
        receipt = gov.execute(proposal, sender=addr(box, 4))
        assert gov.state(pid) == ProposalState.EXECUTED
        assert registry.events("CheckpointPromoted", receipt) == [
            {
                "runId": run_key(RUN),
                "index": i,
                "cid": cid,
                "evalDigest": digest,
                "parentCid": "" if i == 0 else CID1,
            }
        ]
    assert [c.cid for c in registry.lineage(RUN)] == [CID1, CID2]
    assert registry.current(RUN).eval_digest == digests[1]
    assert registry.is_promoted(RUN, CID1) and not registry.is_promoted("other run", CID1)


def test_a_later_vote_rolls_a_promotion_back(box):
    for cid, weights in ((CID1, W1), (CID2, W2)):
        promote_via_vote(box, cid, ready(box, cid, weights))
    proposal = rollback_proposal(box.c.registry.address, RUN, 0)
    pass_vote(box, proposal)
    receipt = box.c.governor.execute(proposal, sender=addr(box, 4))
    assert box.c.registry.events("CheckpointRolledBack", receipt) == [
        {"runId": run_key(RUN), "index": 2, "cid": CID1, "fromIndex": 0}
    ]
    assert box.c.registry.current(RUN).cid == CID1
    assert [c.cid for c in box.c.registry.lineage(RUN)] == [CID1, CID2, CID1]
    bad = rollback_proposal(box.c.registry.address, RUN, 7)
    pass_vote(box, bad)
    assert revert_of(lambda: box.c.governor.execute(bad, sender=addr(box, 4))) == (
        "IndexOutOfRange",
        (run_key(RUN), 7, 3),
    )


# ---------------------------------------------------------------- the timelock


def test_the_timelock_delay_is_enforced(box):
    digest = ready(box, CID1, W1)
    proposal = promotion_proposal(box.c.registry.address, RUN, CID1, digest)
    pid = open_vote(box, proposal)
    box.c.governor.cast_vote(pid, Support.FOR, sender=addr(box, 0))
    close_vote(box)
    assert revert_of(lambda: box.c.governor.execute(proposal, sender=addr(box, 4))) == (
        "TimelockUnexpectedOperationState",
        (ANY, ANY),
    )  # not queued: no executing at once
    box.c.governor.queue(proposal, sender=addr(box, 4))
    eta = box.c.governor.proposal_eta(pid)
    advance_time(box.w3, PARAMS.timelock_delay - 10)
    assert revert_of(lambda: box.c.governor.execute(proposal, sender=addr(box, 4))) == (
        "TimelockUnexpectedOperationState",
        (ANY, ANY),
    )
    assert box.c.timelock.min_delay() == PARAMS.timelock_delay
    advance_time(box.w3, 11)
    assert box.w3.eth.get_block("latest")["timestamp"] >= eta
    box.c.governor.execute(proposal, sender=addr(box, 4))
    assert box.c.registry.current(RUN).cid == CID1


def test_only_the_timelock_may_promote_and_only_the_governor_may_queue(box):
    digest = ready(box, CID1, W1)
    assert box.c.registry.governor() == box.c.timelock.address
    assert box.c.governor.timelock() == box.c.timelock.address
    assert revert_of(lambda: box.c.registry._send("promote", run_key(RUN), CID1, digest, sender=addr(box, 0))) == (
        "NotGovernor",
        (addr(box, 0),),
    )
    assert box.c.timelock.has_role("PROPOSER_ROLE", box.c.governor.address)
    assert not box.c.timelock.has_role("PROPOSER_ROLE", box.deployer)
    assert not box.c.timelock.has_role("DEFAULT_ADMIN_ROLE", box.deployer)  # the deployer renounced


# ---------------------------------------------------------------- what promote accepts


def test_an_unnominated_cid_cannot_be_promoted_even_by_a_winning_vote(box):
    """A staker proposes a CID that voters never saw nominated: the vote passes, execution reverts."""
    proposal = promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST)
    pass_vote(box, proposal)
    assert revert_of(lambda: box.c.governor.execute(proposal, sender=addr(box, 4))) == (
        "NotNominated",
        (run_key(RUN), CID1),
    )
    assert box.c.registry.current(RUN) is None


def test_promote_needs_the_fixed_seed_and_the_recorded_digest(box):
    box.c.registry.nominate(RUN, CID1, W1, sender=addr(box, 3))
    unfixed = promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST)
    pass_vote(box, unfixed)
    assert revert_of(lambda: box.c.governor.execute(unfixed, sender=addr(box, 4))) == (
        "SeedNotFixed",
        (run_key(RUN), CID1),
    )
    box.c.registry.fix_seed(RUN, CID1, sender=addr(box, 3))
    record(box, CID1, 3, 5)
    wrong = promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST, "promote with another digest")
    pass_vote(box, wrong)
    assert revert_of(lambda: box.c.governor.execute(wrong, sender=addr(box, 4))) == (
        "EvalNotRecorded",
        (run_key(RUN), CID1, DIGEST),
    )


def test_the_recorded_digest_is_bound_to_the_chain_seed(box):
    """The registry derives the seed and the digest itself: an eval on a precomputed seed cannot be recorded."""
    from eth_abi import encode

    from coordination.governance.transparent_eval import eval_seed

    reg = box.c.registry
    reg.nominate(RUN, CID1, W1, sender=addr(box, 3))
    assert revert_of(lambda: reg.eval_seed_int(RUN, CID1)) == ("SeedNotFixed", (run_key(RUN), CID1))
    advance_time(box.w3, 1)
    reg.fix_seed(RUN, CID1, sender=addr(box, 3))
    seed = reg.eval_seed_int(RUN, CID1)
    assert seed == eval_seed(reg.eval_seed(RUN, CID1), run_key(RUN), CID1) < 2**63
    assert revert_of(lambda: record(box, CID1, 4, 7, signers=[box.accounts[0]])) == (
        "NotAValidator",
        (addr(box, 0),),
    )  # a staker is not a validator: no score without a quorum
    receipt = record(box, CID1, 4, 7)
    [event] = reg.events("EvalRecorded", receipt)
    expected = keccak(encode(["string", "uint256", "uint256", "uint256", "bytes32"], [CID1, seed, 4, 7, ROOT]))
    assert event["evalDigest"] == expected and (event["correct"], event["total"]) == (4, 7)
    result = reg.eval_result(RUN, CID1, expected)
    assert (result.correct, result.total, result.records_root, result.recorded) == (4, 7, ROOT, True)
    for correct, total in ((8, 7), (0, 0)):
        assert revert_of(
            reg.record_eval, RUN, CID1, correct, total, ROOT, chain_now(box.w3) - 1, [], sender=addr(box, 4)
        ) == ("InvalidEvalScore", (correct, total))


def test_registry_rejects_duplicates_and_empty_cids(box):
    digest = ready(box, CID1, W1)
    promote_via_vote(box, CID1, digest)
    dup = promotion_proposal(box.c.registry.address, RUN, CID1, digest, "promote cid1 again")
    pass_vote(box, dup)
    assert revert_of(lambda: box.c.governor.execute(dup, sender=addr(box, 4))) == (
        "CheckpointAlreadyPromoted",
        (run_key(RUN), CID1),
    )
    empty = promotion_proposal(box.c.registry.address, RUN, "", DIGEST, "promote nothing")
    pass_vote(box, empty)
    assert revert_of(lambda: box.c.governor.execute(empty, sender=addr(box, 4))) == ("EmptyCid", ())


# ---------------------------------------------------------------- nomination and seed


def test_nomination_is_once_per_weights_hash_so_seeds_cannot_be_ground(box):
    """K byte-different manifests of one adapter make one nomination and one seed."""
    reg = box.c.registry
    assert revert_of(lambda: reg.nomination_block(RUN, CID1)) == ("NotNominated", (run_key(RUN), CID1))
    receipt = reg.nominate(RUN, CID1, W1, sender=addr(box, 3))
    assert reg.events("CheckpointNominated", receipt) == [
        {
            "runId": run_key(RUN),
            "cid": CID1,
            "weightsHash": W1,
            "nominator": addr(box, 3),
            "blockNumber": receipt["blockNumber"],
        }
    ]
    assert reg.nomination_block(RUN, CID1) == receipt["blockNumber"]
    for k in range(5):  # the same weights under other manifest CIDs
        assert revert_of(reg.nominate, RUN, f"bafkreimanifest{k}", W1, sender=addr(box, 4)) == (
            "WeightsAlreadyNominated",
            (run_key(RUN), W1, CID1),
        )
    assert revert_of(lambda: reg.nominate(RUN, CID1, W2, sender=addr(box, 4))) == (
        "AlreadyNominated",
        (run_key(RUN), CID1, receipt["blockNumber"]),
    )
    assert reg.cid_of_weights(RUN, W1) == CID1
    assert revert_of(lambda: reg.nominate(RUN, "", W2, sender=addr(box, 3))) == ("EmptyCid", ())
    assert revert_of(lambda: reg.nominate(RUN, CID2, bytes(32), sender=addr(box, 3))) == ("ZeroWeightsHash", ())
    assert reg.nominate("another run", CID1, W1, sender=addr(box, 3))["status"] == 1  # per run


def test_the_seed_is_the_hash_of_the_block_after_the_nomination(box):
    reg = box.c.registry
    block = reg.nominate(RUN, CID1, W1, sender=addr(box, 3))["blockNumber"]
    assert revert_of(lambda: reg.fix_seed(RUN, CID1, sender=addr(box, 3))) == (
        "SeedNotYetAvailable",
        (run_key(RUN), CID1, block + 1),
    )
    assert revert_of(
        lambda: reg.record_eval(RUN, CID1, 1, 2, ROOT, chain_now(box.w3) - 1, [], sender=addr(box, 3))
    ) == ("SeedNotFixed", (run_key(RUN), CID1))
    advance_time(box.w3, 1)
    receipt = reg.fix_seed(RUN, CID1, sender=addr(box, 4))
    expected = bytes(box.w3.eth.get_block(block + 1)["hash"])
    assert reg.eval_seed(RUN, CID1) == expected
    assert reg.events("SeedFixed", receipt) == [
        {"runId": run_key(RUN), "cid": CID1, "seed": expected, "seedBlock": block + 1}
    ]
    assert revert_of(lambda: reg.fix_seed(RUN, CID1, sender=addr(box, 4))) == (
        "SeedAlreadyFixed",
        (run_key(RUN), CID1, expected),
    )
    assert revert_of(lambda: reg.fix_seed(RUN, CID2, sender=addr(box, 4))) == ("NotNominated", (run_key(RUN), CID2))


def test_a_seed_left_unfixed_for_256_blocks_expires(box):
    block = box.c.registry.nominate(RUN, CID1, W1, sender=addr(box, 3))["blockNumber"]
    box.w3.testing.mine(300)
    assert revert_of(lambda: box.c.registry.fix_seed(RUN, CID1, sender=addr(box, 3))) == (
        "SeedExpired",
        (run_key(RUN), CID1, block + 1),
    )


def test_a_promoted_checkpoint_cannot_be_nominated(box):
    promote_via_vote(box, CID1, ready(box, CID1, W1))
    assert revert_of(lambda: box.c.registry.nominate(RUN, CID1, W2, sender=addr(box, 0))) == (
        "CheckpointAlreadyPromoted",
        (run_key(RUN), CID1),
    )


# ---------------------------------------------------------------- votes


def test_proposal_without_quorum_or_majority_is_defeated(box):
    gov = box.c.governor
    proposal = promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST)
    pid = open_vote(box, proposal)
    gov.cast_vote(pid, Support.FOR, sender=addr(box, 1))  # 100 for
    gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 2))  # 300 against
    close_vote(box)
    assert gov.state(pid) == ProposalState.DEFEATED
    assert revert_of(lambda: gov.queue(proposal, sender=addr(box, 0))) == (
        "GovernorUnexpectedProposalState",
        (pid, int(ProposalState.DEFEATED), ANY),
    )


def test_governor_uses_the_staking_timestamp_clock(box):
    assert box.c.governor._call("CLOCK_MODE") == "mode=timestamp"
    assert box.c.governor._call("clock") == box.c.staking.param("clock")


def test_quorum_is_a_fraction_of_stake_at_the_snapshot(box):
    pid = open_vote(box, promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST))
    assert box.c.governor.quorum(box.c.governor.proposal_snapshot(pid)) == 105


def test_proposing_needs_the_stake_threshold(box):
    proposal = promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST)
    assert revert_of(lambda: box.c.governor.propose(proposal, sender=addr(box, 2))) == (
        "GovernorInsufficientProposerVotes",
        (addr(box, 2), 300, 500),
    )


def test_stake_added_after_the_snapshot_does_not_count(box):
    gov = box.c.governor
    pid = open_vote(box, promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST))
    box.approve_and_stake(box.accounts[3], 5000)  # after the snapshot: would dominate if it counted
    gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 3))
    gov.cast_vote(pid, Support.FOR, sender=addr(box, 0))
    assert gov.proposal_votes(pid).against == 0
    assert gov.proposal_votes(pid).for_ == 600
    close_vote(box)
    assert gov.state(pid) == ProposalState.SUCCEEDED


def test_moving_stake_after_voting_cannot_vote_twice(box):
    gov = box.c.governor
    pid = open_vote(box, promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST))
    gov.cast_vote(pid, Support.FOR, sender=addr(box, 0))
    assert revert_of(lambda: gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 0))) == (
        "GovernorAlreadyCastVote",
        (addr(box, 0),),
    )
    box.c.staking.delegate(addr(box, 1), sender=addr(box, 0))  # hand current votes to account 1
    gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 1))  # weighs only its own 100 at the snapshot
    box.c.staking.request_unstake(600, sender=addr(box, 0))
    advance_time(box.w3, 5)
    box.c.staking.withdraw(sender=addr(box, 0))
    box.c.token.transfer(addr(box, 4), 600, sender=addr(box, 0))
    box.approve_and_stake(box.accounts[4], 600)  # the same tokens, restaked by a fresh account
    gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 4))
    assert gov.proposal_votes(pid) == type(gov.proposal_votes(pid))(against=100, for_=600, abstain=0)
    assert gov.has_voted(pid, addr(box, 4))


def test_registry_views_revert_clearly(box):
    assert revert_of(lambda: box.c.registry._call("current", run_key(RUN))) == ("NoCheckpoint", (run_key(RUN),))
    assert revert_of(lambda: box.c.registry.checkpoint_at(RUN, 0)) == ("IndexOutOfRange", (run_key(RUN), 0, 0))
    assert revert_of(
        lambda: deploy_contract(
            box.w3, "CheckpointRegistry", "0x" + "0" * 40, box.c.staking.address, sender=box.deployer
        )
    ) == ("ZeroAddress", ())
    assert revert_of(
        lambda: deploy_contract(
            box.w3, "CheckpointRegistry", box.c.timelock.address, "0x" + "0" * 40, sender=box.deployer
        )
    ) == ("ZeroAddress", ())
