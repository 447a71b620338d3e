"""RunGovernor + CheckpointRegistry on eth-tester: propose promote → vote → execute → lineage.

Voting power is stake at the proposal snapshot: stake added later counts for nothing, and moving
stake after voting cannot buy a second vote.
"""

import pytest
from eth_utils import keccak

from coordination.chain.clock import advance_time
from coordination.chain.deploy import DeployParams, deploy_contract
from coordination.chain.governance import ProposalState, Support, promotion_proposal
from coordination.chain.sandbox import Sandbox, expect_revert
from coordination.chain.signing import run_key

pytestmark = pytest.mark.chain

PARAMS = DeployParams(unbonding_delay=5, voting_delay=10, voting_period=100, proposal_threshold=500, quorum_percent=10)
RUN = "bafy-run-governance"
CID1, CID2 = "bafkreicid1", "bafkreicid2"
DIGEST = keccak(text="eval attestations")


@pytest.fixture(scope="module")
def box():
    box = Sandbox.create(accounts=5, params=PARAMS)
    box.approve_and_stake(box.accounts[0], 600)  # proposer, above the 500 threshold
    box.approve_and_stake(box.accounts[1], 100)
    box.approve_and_stake(box.accounts[2], 300)  # total stake 1000 -> quorum 100
    advance_time(box.w3, 1)
    return box


@pytest.fixture(autouse=True)
def fresh(box):
    snap = box.snapshot()
    yield
    box.revert(snap)


def addr(box, i):
    return box.accounts[i].address


def open_vote(box, cid, description=""):
    proposal = promotion_proposal(box.c.registry.address, RUN, cid, DIGEST, description)
    pid = box.c.governor.propose(proposal, sender=addr(box, 0))
    assert box.c.governor.state(pid) == ProposalState.PENDING
    advance_time(box.w3, box.c.governor.voting_delay() + 1)
    assert box.c.governor.state(pid) == ProposalState.ACTIVE
    return proposal, pid


def close_vote(box):
    advance_time(box.w3, box.c.governor.voting_period() + 1)


def test_promotion_end_to_end_builds_lineage(box):
    gov, registry = box.c.governor, box.c.registry
    assert registry.current(RUN) is None
    for i, cid in enumerate([CID1, CID2]):
        proposal, pid = open_vote(box, cid)
        gov.cast_vote(pid, Support.FOR, sender=addr(box, 0))
        gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 2), reason="eval too weak")
        assert gov.proposal_votes(pid) == type(gov.proposal_votes(pid))(against=300, for_=600, abstain=0)
        close_vote(box)
        assert gov.state(pid) == ProposalState.SUCCEEDED
        receipt = gov.execute(proposal, sender=addr(box, 4))
        assert gov.state(pid) == ProposalState.EXECUTED
        assert registry.events("CheckpointPromoted", receipt) == [
            {
                "runId": run_key(RUN),
                "index": i,
                "cid": cid,
                "evalDigest": DIGEST,
                "parentCid": "" if i == 0 else CID1,
            }
        ]
    assert [c.cid for c in registry.lineage(RUN)] == [CID1, CID2]
    assert registry.current(RUN).eval_digest == DIGEST
    assert registry.is_promoted(RUN, CID1) and not registry.is_promoted("other run", CID1)


def test_proposal_without_quorum_or_majority_is_defeated(box):
    gov = box.c.governor
    proposal, pid = open_vote(box, CID1)
    gov.cast_vote(pid, Support.FOR, sender=addr(box, 1))  # 100 for
    gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 2))  # 300 against
    close_vote(box)
    assert gov.state(pid) == ProposalState.DEFEATED
    with expect_revert("GovernorUnexpectedProposalState", pid, int(ProposalState.DEFEATED), ANY_STATES):
        gov.execute(proposal, sender=addr(box, 0))


ANY_STATES = ((1 << ProposalState.SUCCEEDED) | (1 << ProposalState.QUEUED)).to_bytes(
    32, "big"
)  # allowed-states bitmap


def test_governor_uses_the_staking_timestamp_clock(box):
    assert box.c.governor._call("CLOCK_MODE") == "mode=timestamp"
    assert box.c.governor._call("clock") == box.c.staking.param("clock")


def test_quorum_is_a_fraction_of_stake_at_the_snapshot(box):
    proposal, pid = open_vote(box, CID1)
    assert box.c.governor.quorum(box.c.governor.proposal_snapshot(pid)) == 100


def test_proposing_needs_the_stake_threshold(box):
    proposal = promotion_proposal(box.c.registry.address, RUN, CID1, DIGEST)
    with expect_revert("GovernorInsufficientProposerVotes", addr(box, 2), 300, 500):
        box.c.governor.propose(proposal, sender=addr(box, 2))


def test_stake_added_after_the_snapshot_does_not_count(box):
    gov = box.c.governor
    proposal, pid = open_vote(box, CID1)
    box.approve_and_stake(box.accounts[3], 5000)  # after the snapshot: would dominate if it counted
    gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 3))
    gov.cast_vote(pid, Support.FOR, sender=addr(box, 0))
    assert gov.proposal_votes(pid).against == 0
    assert gov.proposal_votes(pid).for_ == 600
    close_vote(box)
    assert gov.state(pid) == ProposalState.SUCCEEDED


def test_moving_stake_after_voting_cannot_vote_twice(box):
    gov = box.c.governor
    proposal, pid = open_vote(box, CID1)
    gov.cast_vote(pid, Support.FOR, sender=addr(box, 0))
    with expect_revert("GovernorAlreadyCastVote", addr(box, 0)):
        gov.cast_vote(pid, Support.AGAINST, sender=addr(box, 0))
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


def test_registry_rejects_duplicates_empty_cids_and_strangers(box):
    gov = box.c.governor
    p1, pid1 = open_vote(box, CID1)
    p_dup, pid_dup = open_vote(box, CID1, description="promote cid1 again")
    p_empty, pid_empty = open_vote(box, "", description="promote nothing")
    for pid in (pid1, pid_dup, pid_empty):
        gov.cast_vote(pid, Support.FOR, sender=addr(box, 0))
    close_vote(box)
    gov.execute(p1, sender=addr(box, 0))
    with expect_revert("CheckpointAlreadyPromoted", run_key(RUN), CID1):
        gov.execute(p_dup, sender=addr(box, 0))
    with expect_revert("EmptyCid"):
        gov.execute(p_empty, sender=addr(box, 0))
    with expect_revert("NotGovernor", addr(box, 0)):
        box.c.registry._send("promote", run_key(RUN), CID2, DIGEST, sender=addr(box, 0))


def test_registry_views_revert_clearly(box):
    with expect_revert("NoCheckpoint", run_key(RUN)):
        box.c.registry._call("current", run_key(RUN))
    with expect_revert("IndexOutOfRange", run_key(RUN), 0, 0):
        box.c.registry.checkpoint_at(RUN, 0)
    with expect_revert("ZeroAddress"):
        deploy_contract(box.w3, "CheckpointRegistry", "0x" + "0" * 40, sender=box.deployer)
    assert box.c.registry.governor() == box.c.governor.address


def test_nomination_records_its_block_once(box):
    reg = box.c.registry
    with expect_revert("NotNominated", run_key(RUN), CID1):
        reg.nomination_block(RUN, CID1)
    receipt = reg.nominate(RUN, CID1, sender=addr(box, 3))
    assert reg.events("CheckpointNominated", receipt) == [
        {"runId": run_key(RUN), "cid": CID1, "nominator": addr(box, 3), "blockNumber": receipt["blockNumber"]}
    ]
    assert reg.nomination_block(RUN, CID1) == receipt["blockNumber"]
    with expect_revert("AlreadyNominated", run_key(RUN), CID1, receipt["blockNumber"]):  # the seed cannot be re-rolled
        reg.nominate(RUN, CID1, sender=addr(box, 4))
    with expect_revert("EmptyCid"):
        reg.nominate(RUN, "", sender=addr(box, 3))
    assert reg.nominate("another run", CID1, sender=addr(box, 3))["status"] == 1  # per run


def test_a_promoted_checkpoint_cannot_be_nominated(box):
    proposal, pid = open_vote(box, CID1)
    box.c.governor.cast_vote(pid, Support.FOR, sender=addr(box, 0))
    close_vote(box)
    box.c.governor.execute(proposal, sender=addr(box, 0))
    with expect_revert("CheckpointAlreadyPromoted", run_key(RUN), CID1):
        box.c.registry.nominate(RUN, CID1, sender=addr(box, 0))
