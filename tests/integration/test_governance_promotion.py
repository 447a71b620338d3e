"""Promotion by vote on eth-tester: nominate → fix seed → attested eval on the chain's seed → record → propose →
vote → queue → timelock → execute; and the attacks on it: description spoofing, an un-nominated CID, seed grinding
with K manifests of one adapter, a checkpoint tuned on a fixed public eval set."""

import dataclasses

import pytest
from eth_utils import keccak

from coordination.chain.clock import advance_time
from coordination.chain.deploy import DeployParams
from coordination.chain.eip712 import run_key
from coordination.chain.governance import ProposalState, promotion_proposal
from coordination.chain.sandbox import Sandbox, register_validators, revert_of
from coordination.checkpoints.store import CheckpointStore
from coordination.checkpoints.synthetic import write_synthetic_adapter
from coordination.checkpoints.weights import weights_hash
from coordination.errors import AttestationError, ChainError
from coordination.governance.promotion import (
    fix_seed,
    nominate,
    nomination_seed,
    promote,
    proposal_rows,
    proposals,
    propose_promotion,
    vote,
)
from coordination.governance.transparent_eval import (
    EvalBundle,
    EvalRecord,
    eval_domain,
    eval_problems,
    run_transparent_eval,
)
from trainer.tasks import get_task
from trainer.tasks.base import split_of

pytestmark = pytest.mark.chain

PARAMS = DeployParams(
    unbonding_delay=5,
    challenge_window=1,
    activation_delay=5,
    voting_delay=10,
    voting_period=100,
    proposal_threshold=500,
    quorum_percent=10,
    min_validator_stake=200,
    timelock_delay=30,
)
RUN = "bafyrun-governance-promotion"
CID = "bafyreicheckpoint"
WEIGHTS = keccak(text="the adapter's tensors")
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
    for i, sample in enumerate(eval_problems(TASK, seed, n)):
        completion = TASK.teacher_trace(sample) if i % 2 == 0 else "<t>?</t><a>0</a>"
        records.append(EvalRecord(i, TASK.prompt(sample), completion, None, bool(TASK.verify(completion, sample))))
    return EvalBundle(cid, TASK.key, seed, records)


def attested(box, seed, signers=(1, 2), cid=CID):
    bundle = eval_bundle(seed, cid)
    domain = eval_domain(box.w3.eth.chain_id, box.c.registry.address)
    for i in signers:
        bundle.attest(box.accounts[i].key, domain)
    return bundle


def nominated(box, cid=CID, weights=WEIGHTS):
    nominate(box.w3, box.c, RUN, cid, weights, sender=box.accounts[0].address)
    return fix_seed(box.w3, box.c, RUN, cid, sender=box.accounts[3].address)


def test_promotion_end_to_end(box):
    nom = nominated(box)
    assert nom.block_number == box.c.registry.nomination_block(RUN, CID) and nom.weights_hash == WEIGHTS
    bundle = attested(box, nom.seed)
    pid = propose_promotion(box.w3, box.c, run_id=RUN, cid=CID, bundle=bundle, sender=box.accounts[0].address)
    [info] = proposals(box.w3, box.c)
    assert info.proposal_id == pid and info.state == ProposalState.PENDING
    assert info.facts == {
        "action": "promote",
        "run_id": "0x" + run_key(RUN).hex(),
        "cid": CID,
        "eval_digest": "0x" + bundle.digest.hex(),
        "nominated": True,
        "eval_recorded": True,
        "correct": 3,
        "total": 5,
    }
    assert proposal_rows([info])[0]["eval"] == "3/5"  # the score as the registry recorded it

    advance_time(box.w3, PARAMS.voting_delay + 1)
    vote(box.c, pid, "for", sender=box.accounts[0].address)
    vote(box.c, pid, "against", sender=box.accounts[5].address)  # no stake: counted with zero weight
    with pytest.raises(ChainError, match="voting is still open"):
        promote(box.w3, box.c, pid, sender=box.accounts[3].address)
    advance_time(box.w3, PARAMS.voting_period + 1)
    [info] = proposals(box.w3, box.c)
    assert (info.votes_for, info.votes_against, info.state) == (600, 0, ProposalState.SUCCEEDED)

    promote(box.w3, box.c, pid, sender=box.accounts[3].address)  # queues
    assert box.c.governor.state(pid) == ProposalState.QUEUED
    with pytest.raises(ChainError, match="timelock delay"):
        promote(box.w3, box.c, pid, sender=box.accounts[3].address)
    advance_time(box.w3, PARAMS.timelock_delay + 1)
    promote(box.w3, box.c, pid, sender=box.accounts[3].address)  # executes
    current = box.c.registry.current(RUN)
    assert current.cid == CID and current.eval_digest == bundle.digest
    assert proposals(box.w3, box.c)[0].state == ProposalState.EXECUTED


@pytest.mark.parametrize(
    "fault", ["missing", "forged", "other_cid", "precomputed_seed", "non_validator", "below_stake_quorum"]
)
def test_bad_eval_attestations_block_the_proposal(box, fault):
    nom = nominated(box)
    if fault == "missing":
        bundle = attested(box, nom.seed, signers=())
    elif fault == "forged":
        bundle = attested(box, nom.seed)
        bundle.records[1] = dataclasses.replace(bundle.records[1], verdict=True)  # inflate the signed score
    elif fault == "other_cid":
        bundle = attested(box, nom.seed, cid="bafyreiother")
    elif fault == "precomputed_seed":
        bundle = attested(box, 12345)  # an eval run before the chain fixed the seed
    elif fault == "non_validator":
        bundle = attested(box, nom.seed, signers=(0,))  # a staker, not a registered validator
    else:
        bundle = attested(box, nom.seed, signers=(1,))  # one of two equal validators: 50% < the 66.67% quorum
    with pytest.raises(AttestationError):
        propose_promotion(box.w3, box.c, run_id=RUN, cid=CID, bundle=bundle, sender=box.accounts[0].address)
    assert proposals(box.w3, box.c) == []


def test_unnominated_or_unseeded_checkpoint_has_no_seed(box):
    assert revert_of(
        lambda: propose_promotion(
            box.w3, box.c, run_id=RUN, cid=CID, bundle=eval_bundle(1), sender=box.accounts[0].address
        )
    ) == ("NotNominated", (run_key(RUN), CID))
    nominate(box.w3, box.c, RUN, CID, WEIGHTS, sender=box.accounts[0].address)
    with pytest.raises(ChainError, match="not fixed yet"):
        nomination_seed(box.w3, box.c, RUN, CID)


def test_description_spoofing_shows_the_calldata_not_the_story(box):
    """A proposal whose description advertises a good checkpoint but whose calldata promotes another."""
    nom = nominated(box)
    bundle = attested(box, nom.seed)
    lie = f'Promote checkpoint {CID}: eval 5/5 on seed {nom.seed}\nhivetune-promote:{{"cid": "{CID}"}}'
    spoof = promotion_proposal(box.c.registry.address, RUN, "bafyreievil", bundle.digest, lie)
    box.c.governor.propose(spoof, sender=box.accounts[0].address)
    [row] = proposal_rows(proposals(box.w3, box.c))
    assert row["cid"] == "bafyreievil" and "bafyreievil" in row["executes"] and CID not in row["executes"]
    assert row["nominated"] is False and row["eval_recorded"] is False  # voters see it was never nominated


def test_an_unnominated_cid_that_wins_the_vote_still_cannot_execute(box):
    spoof = promotion_proposal(box.c.registry.address, RUN, "bafyreievil", keccak(text="x"), "trust me")
    pid = box.c.governor.propose(spoof, sender=box.accounts[0].address)
    advance_time(box.w3, PARAMS.voting_delay + 1)
    vote(box.c, pid, "for", sender=box.accounts[0].address)
    advance_time(box.w3, PARAMS.voting_period + 1)
    promote(box.w3, box.c, pid, sender=box.accounts[3].address)
    advance_time(box.w3, PARAMS.timelock_delay + 1)
    assert revert_of(lambda: promote(box.w3, box.c, pid, sender=box.accounts[3].address)) == (
        "NotNominated",
        (run_key(RUN), "bafyreievil"),
    )
    assert box.c.registry.current(RUN) is None


def test_seed_grinding_k_manifests_of_one_adapter_make_one_nomination(box, tmp_path):
    store = CheckpointStore(tmp_path / "store")
    adapter = write_synthetic_adapter(tmp_path / "adapter", megabytes=0.1, seed=7)
    manifests = [store.add_adapter(adapter, base_model="hivetune/tiny", step=k) for k in range(8)]
    hashes = {weights_hash(store.checkout(c)) for c in manifests}
    assert len(set(manifests)) == 8 and len(hashes) == 1
    nominate(box.w3, box.c, RUN, manifests[0], hashes.pop(), sender=box.accounts[0].address)
    for cid in manifests[1:]:
        weights = weights_hash(store.checkout(cid))
        assert revert_of(nominate, box.w3, box.c, RUN, cid, weights, sender=box.accounts[0].address) == (
            "WeightsAlreadyNominated",
            (run_key(RUN), ANY_BYTES, manifests[0]),
        )
    fix_seed(box.w3, box.c, RUN, manifests[0], sender=box.accounts[3].address)
    seeds = set()
    for cid in manifests[1:]:
        with pytest.raises(ChainError):
            seeds.add(nomination_seed(box.w3, box.c, RUN, cid).seed)
    assert seeds == set()  # one seed, not eight to pick from


class _AnyBytes:
    def __eq__(self, other):
        return isinstance(other, bytes | bytearray) and len(other) == 32


ANY_BYTES = _AnyBytes()


def test_a_checkpoint_tuned_on_a_fixed_public_eval_set_meets_fresh_problems(box):
    """The old eval set was a fixed seed anyone could train on; a memorizer aces it and fails the chain's seed."""
    public = eval_problems(TASK, 12_345, 32)
    memorized = {TASK.prompt(s): TASK.teacher_trace(s) for s in public}

    def memorizer(prompts):
        return [memorized.get(p, "<t>?</t><a>0</a>") for p in prompts]

    old = run_transparent_eval(None, None, TASK, cid=CID, seed=12_345, n=32, generate=memorizer)
    assert old.correct == 32
    nom = nominated(box)
    fresh = run_transparent_eval(None, None, TASK, cid=CID, seed=nom.seed, n=32, generate=memorizer)
    overlap = sum(r.prompt in memorized for r in fresh.records)
    assert fresh.correct == overlap <= 8  # only chance overlaps with the memorized set (expected ~1 of 32)
    for record, sample in zip(fresh.records, eval_problems(TASK, nom.seed, 32), strict=True):
        assert split_of(TASK.key, sample.question, TASK.eval_fraction) == "eval"  # never a training problem
        assert sample.split == "eval" and record.prompt == TASK.prompt(sample)
    train = {TASK.sample(0, i).question for i in range(500)}
    assert not train & {s.question for s in eval_problems(TASK, nom.seed, 200)}
