"""Promotion by vote on eth-tester: nominate → attested eval on the chain's seed → propose → vote → promote."""

import dataclasses

import pytest

from coordination.chain.clock import advance_time
from coordination.chain.deploy import DeployParams
from coordination.chain.governance import ProposalState
from coordination.chain.sandbox import ANY, Sandbox, expect_revert, register_validators
from coordination.chain.signing import run_key
from coordination.errors import AttestationError, ChainError
from coordination.governance.promotion import nominate, promote, proposals, propose_promotion, vote
from coordination.governance.transparent_eval import EvalBundle, EvalRecord, eval_domain
from trainer.tasks import get_task

pytestmark = pytest.mark.chain

PARAMS = DeployParams(
    unbonding_delay=5,
    voting_delay=10,
    voting_period=100,
    proposal_threshold=500,
    quorum_percent=10,
    min_validator_stake=200,
)
RUN = "bafyrun-governance-promotion"
CID = "bafyreicheckpoint"
TASK = get_task("arithmetic")


@pytest.fixture(scope="module")
def box():
    box = Sandbox.create(accounts=6, params=PARAMS)
    box.approve_and_stake(box.accounts[0], 600)  # staker + proposer
    register_validators(box, {box.accounts[1]: 300, box.accounts[2]: 300})
    advance_time(box.w3, 1)
    return box


@pytest.fixture(autouse=True)
def fresh(box):
    snap = box.snapshot()
    yield
    box.revert(snap)


def eval_bundle(seed, cid=CID, n=5):
    records = []
    for i in range(n):
        sample = TASK.sample(seed, i, split="eval")
        completion = TASK.teacher_trace(sample) if i % 2 == 0 else "<t>?</t><a>0</a>"
        records.append(EvalRecord(i, TASK.prompt(sample), completion, None, bool(TASK.verify(completion, sample))))
    return EvalBundle(cid, TASK.key, seed, records)


def attested(box, seed, signers=(1, 2), cid=CID):
    bundle = eval_bundle(seed, cid)
    domain = eval_domain(box.w3.eth.chain_id, box.c.registry.address)
    for i in signers:
        bundle.attest(box.accounts[i].key, domain)
    return bundle


def test_promotion_end_to_end(box):
    nom = nominate(box.w3, box.c, RUN, CID, sender=box.accounts[0].address)
    block_hash = box.w3.eth.get_block(nom.block_number)["hash"]
    assert nom.block_number == box.c.registry.nomination_block(RUN, CID) and len(block_hash) == 32
    bundle = attested(box, nom.seed)
    pid = propose_promotion(
        box.w3, box.c, run_id=RUN, cid=CID, bundle=bundle, sender=box.accounts[0].address, quorum=2
    )
    [info] = proposals(box.w3, box.c)
    assert info.proposal_id == pid and info.state == ProposalState.PENDING
    assert info.facts["cid"] == CID and (info.facts["correct"], info.facts["total"]) == (3, 5)
    assert info.facts["eval_digest"] == "0x" + bundle.digest.hex()

    advance_time(box.w3, PARAMS.voting_delay + 1)
    vote(box.c, pid, "for", sender=box.accounts[0].address)
    vote(box.c, pid, "against", sender=box.accounts[5].address)  # no stake: counted with zero weight
    with pytest.raises(ChainError, match="voting is still open"):
        promote(box.w3, box.c, pid, sender=box.accounts[3].address)
    advance_time(box.w3, PARAMS.voting_period + 1)
    [info] = proposals(box.w3, box.c)
    assert (info.votes_for, info.votes_against, info.state) == (600, 0, ProposalState.SUCCEEDED)

    promote(box.w3, box.c, pid, sender=box.accounts[3].address)
    current = box.c.registry.current(RUN)
    assert current.cid == CID and current.eval_digest == bundle.digest
    assert proposals(box.w3, box.c)[0].state == ProposalState.EXECUTED


@pytest.mark.parametrize("fault", ["missing", "forged", "other_cid", "precomputed_seed", "non_validator"])
def test_bad_eval_attestations_block_the_proposal(box, fault):
    nom = nominate(box.w3, box.c, RUN, CID, sender=box.accounts[0].address)
    if fault == "missing":
        bundle = attested(box, nom.seed, signers=())
    elif fault == "forged":
        bundle = attested(box, nom.seed)
        bundle.records[1] = dataclasses.replace(bundle.records[1], verdict=True)  # inflate the signed score
    elif fault == "other_cid":
        bundle = attested(box, nom.seed, cid="bafyreiother")
    elif fault == "precomputed_seed":
        bundle = attested(box, 12345)  # an eval run before the chain fixed the seed
    else:
        bundle = attested(box, nom.seed, signers=(0,))  # a staker, not a registered validator
    with pytest.raises(AttestationError):
        propose_promotion(box.w3, box.c, run_id=RUN, cid=CID, bundle=bundle, sender=box.accounts[0].address)
    assert proposals(box.w3, box.c) == []


def test_unnominated_checkpoint_has_no_seed_and_cannot_be_nominated_twice(box):
    with expect_revert("NotNominated", run_key(RUN), CID):
        propose_promotion(box.w3, box.c, run_id=RUN, cid=CID, bundle=eval_bundle(1), sender=box.accounts[0].address)
    nominate(box.w3, box.c, RUN, CID, sender=box.accounts[0].address)
    with expect_revert("AlreadyNominated", run_key(RUN), CID, ANY):
        nominate(box.w3, box.c, RUN, CID, sender=box.accounts[0].address)
