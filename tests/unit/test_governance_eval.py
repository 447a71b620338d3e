"""Transparent eval: commitments, attestations, and per-sample spot checks."""

import dataclasses

import pytest
from eth_account import Account

from coordination.errors import AttestationError
from coordination.governance.transparent_eval import (
    EvalBundle,
    EvalRecord,
    bundle_task,
    check_attestations,
    eval_domain,
    eval_seed,
    merge_bundles,
    run_transparent_eval,
    validator_signers,
    verify_sample,
)
from trainer.tasks import get_task

VALIDATORS = [Account.from_key(bytes([i + 1]) * 32) for i in range(3)]
OUTSIDER = Account.from_key(b"\x42" * 32)
DOMAIN = eval_domain(31337, "0x" + "ab" * 20)
CID = "bafyreigood"


def teacher_bundle(task, *, seed=7, n=6, wrong=(2,)):
    """A bundle whose records are the teacher's traces, with a wrong answer at the `wrong` indices."""
    records = []
    for i in range(n):
        sample = task.sample(seed, i, split="eval")
        completion = task.teacher_trace(sample) if i not in wrong else "<t>guess</t><a>-1</a>"
        records.append(EvalRecord(i, task.prompt(sample), completion, None, bool(task.verify(completion, sample))))
    return EvalBundle(CID, task.key, seed, records)


@pytest.fixture
def task():
    return get_task("arithmetic")


STAKES = {v.address: 1 for v in VALIDATORS}  # equal validator stake; outsiders hold none


def test_score_counts_verdicts_and_every_sample_checks_out(task):
    bundle = teacher_bundle(task, wrong=(2, 4))
    assert (bundle.correct, bundle.total) == (4, 6)
    for i in range(bundle.total):
        check = verify_sample(bundle, i, task, signed_root=bundle.root)
        assert check.ok, check


def test_a_lied_verdict_is_caught_by_recomputation(task):
    bundle = teacher_bundle(task, wrong=())
    bad = dataclasses.replace(bundle.records[1], completion="<t>x</t><a>0</a>")  # verdict still says True
    bundle.records[1] = bad
    check = verify_sample(bundle, 1, task)
    assert check.in_commitment and not check.verdict_matches and not check.ok


def test_a_trace_swapped_after_signing_is_not_in_the_signed_root(task):
    bundle = teacher_bundle(task)
    signed_root = bundle.root
    bundle.records[0] = dataclasses.replace(bundle.records[0], completion=bundle.records[0].completion + " ")
    assert not verify_sample(bundle, 0, task, signed_root=signed_root).in_commitment


def test_attestations_round_trip_through_json(task, tmp_path):
    bundle = teacher_bundle(task)
    for v in VALIDATORS[:2]:
        bundle.attest(v.key, DOMAIN)
    loaded = EvalBundle.load(bundle.save(tmp_path / "eval.json"))
    assert loaded.digest == bundle.digest
    signers = check_attestations(loaded, cid=CID, seed=7, domain=DOMAIN, stakes=STAKES, required=2)
    assert signers == [VALIDATORS[0].address, VALIDATORS[1].address]


@pytest.mark.parametrize(
    "fault, message",
    [
        ("missing", "no validator attestations"),
        ("other_cid", "not bafyreiother"),
        ("other_seed", "the chain fixed seed"),
        ("forged_score", "signed by"),
        ("outsider", "non-validators"),
        ("duplicate", "twice"),
        ("wrong_domain", "signed by"),
        ("below_quorum", "needs 2"),
    ],
)
def test_bad_attestations_are_rejected_with_a_clear_message(task, fault, message):
    bundle = teacher_bundle(task)
    cid, seed = CID, 7
    if fault != "missing":
        bundle.attest(VALIDATORS[0].key, DOMAIN)
    if fault == "other_cid":
        cid = "bafyreiother"
    elif fault == "other_seed":
        seed = 8
    elif fault == "forged_score":
        bundle.records[2] = dataclasses.replace(bundle.records[2], verdict=True)  # claims 6/6 with a 5/6 signature
    elif fault == "outsider":
        bundle.attest(OUTSIDER.key, DOMAIN)
    elif fault == "duplicate":
        bundle.attest(VALIDATORS[0].key, DOMAIN)
    elif fault == "wrong_domain":
        bundle.attestations = []
        bundle.attest(VALIDATORS[0].key, eval_domain(1, "0x" + "ab" * 20))
    with pytest.raises(AttestationError, match=message):
        check_attestations(
            bundle,
            cid=cid,
            seed=seed,
            domain=DOMAIN,
            stakes=STAKES,
            required=2 if fault == "below_quorum" else 1,
        )


def test_eval_seed_depends_on_block_run_and_cid():
    base = eval_seed(b"\x01" * 32, b"\x02" * 32, CID)
    assert 0 <= base < 2**63
    assert base == eval_seed(b"\x01" * 32, b"\x02" * 32, CID)
    assert (
        len(
            {
                base,
                eval_seed(b"\x03" * 32, b"\x02" * 32, CID),
                eval_seed(b"\x01" * 32, b"\x04" * 32, CID),
                eval_seed(b"\x01" * 32, b"\x02" * 32, "bafyreiother"),
            }
        )
        == 4
    )


def test_real_model_eval_is_deterministic_and_committed(task):
    from trainer.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer("tiny")
    a = run_transparent_eval(model, tokenizer, task, cid=CID, seed=3, n=4)
    b = run_transparent_eval(model, tokenizer, task, cid=CID, seed=3, n=4)
    assert a.root == b.root and a.digest == b.digest
    assert [r.completion for r in a.records] == [r.completion for r in b.records]
    assert all(verify_sample(a, i, task).ok for i in range(4))


def test_merge_bundles_joins_every_validators_attestation_and_refuses_other_records(task, tmp_path):
    paths = []
    for i, v in enumerate(VALIDATORS[:2]):
        bundle = teacher_bundle(task, wrong=(2,))
        bundle.attest(v.key, DOMAIN)
        paths.append(bundle.save(tmp_path / f"eval-{i}.json"))
    merged = merge_bundles(paths)
    assert [a["validator"] for a in merged.attestations] == [v.address for v in VALIDATORS[:2]]
    assert validator_signers(merged, DOMAIN, lambda a: True) == [v.address for v in VALIDATORS[:2]]
    other = teacher_bundle(task, wrong=(3,))  # same checkpoint and seed, other records
    other.attest(VALIDATORS[2].key, DOMAIN)
    odd = other.save(tmp_path / "eval-odd.json")
    with pytest.raises(AttestationError, match="eval-odd.json evaluates bafyreigood on seed 7 with other records"):
        merge_bundles([paths[0], odd])


def test_validator_signers_refuses_a_bundle_signed_by_a_non_validator(task):
    bundle = teacher_bundle(task)
    for account in (VALIDATORS[0], OUTSIDER):
        bundle.attest(account.key, DOMAIN)
    registered = {v.address for v in VALIDATORS}
    with pytest.raises(AttestationError, match=f"non-validators \\['{OUTSIDER.address}'\\]"):
        validator_signers(bundle, DOMAIN, registered.__contains__)


def test_bundle_task_rebuilds_the_task_with_its_params(task):
    bundle = teacher_bundle(get_task("arithmetic", digits=3))
    rebuilt = bundle_task(bundle)
    assert rebuilt.key == bundle.task and rebuilt.key != task.key
    assert rebuilt.sample(7, 0, split="eval") == get_task("arithmetic", digits=3).sample(7, 0, split="eval")
