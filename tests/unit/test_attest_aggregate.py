"""Aggregating verdict reports: only checked, staked, stake-quorum rulings count; copies cannot hurt originals;
a minority cannot frame, a FRAUD ruling needs reproducible evidence, split evidence on one receipt adds up."""

import dataclasses

import pytest
from eth_account import Account

from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord
from coordination.chain.eip712 import attest_domain
from coordination.verify.payout import contribution_table
from coordination.verify.rulings import (
    CitedEvidence,
    Finding,
    Kind,
    Status,
    Verdict,
    aggregate_reports,
    equal_stakes,
    sign_verdict,
    verdict_json,
)

DOMAIN = attest_domain(chain_id=31337)
PEERS = [Account.from_key(bytes([0x40] * 31 + [i + 1])) for i in range(2)]
VALIDATORS = [Account.from_key(bytes([0x50] * 31 + [i + 1])) for i in range(3)]
OUTSIDER = Account.from_key(bytes([0x60] * 32))


def signed_receipt(peer, epoch, tokens=3):
    records = [
        RolloutRecord.build(
            slot=0,
            generation=0,
            task_seed=1,
            task_index=9,
            prompt="Q:1+1",
            completion="x" * tokens,
            completion_ids=list(range(tokens)),
            reward=0.0,
            logprobs=[-1.0] * tokens,
        )
    ]
    return sign_receipt(
        build_receipt(
            run_id_bytes32=b"\x01" * 32, epoch=epoch, peer=peer.address, records=records, checkpoint_cid="bafy"
        ),
        peer.key,
        DOMAIN,
    )


def entry(validator, signed, finding=None, epoch=None):
    verdict = Verdict.of(signed.receipt.digest(DOMAIN), signed.receipt, finding, epoch=epoch)
    return verdict_json(sign_verdict(verdict, validator.key, DOMAIN), DOMAIN, signed)


def report(entries):
    return {"verdicts": entries}


EQUAL = dict(stakes={v.address: 1 for v in VALIDATORS}, required=2)  # three equal validators, 2/3 quorum


def test_quorum_of_accepts_pays_and_quorum_of_fraud_forfeits():
    good, bad = signed_receipt(PEERS[0], 0, tokens=4), signed_receipt(PEERS[1], 0)
    fraud = Finding(Kind.WRONG_REWARD, "claimed 1.0, recomputed 0.0", 0, 0)
    reports = [
        report([entry(VALIDATORS[i], good), entry(VALIDATORS[i], bad, fraud if i < 2 else None)]) for i in range(3)
    ]
    outcomes = {o.peer: o for o in aggregate_reports(reports, DOMAIN, **EQUAL)}
    assert outcomes[PEERS[0].address].status == Status.ACCEPTED
    assert outcomes[PEERS[1].address].status == Status.FRAUD
    assert len(outcomes[PEERS[1].address].verdicts) == 2
    assert contribution_table(outcomes.values()) == {PEERS[0].address: 4}


def test_one_accusation_or_unregistered_signers_do_not_make_a_ruling():
    good = signed_receipt(PEERS[0], 0)
    fraud = Finding(Kind.WRONG_PROMPT, "made up", 0, 0)
    reports = [
        report([entry(VALIDATORS[0], good, fraud), entry(OUTSIDER, good, fraud)]),
        report([entry(VALIDATORS[1], good), entry(VALIDATORS[2], good)]),
    ]
    (outcome,) = aggregate_reports(reports, DOMAIN, **EQUAL)
    assert outcome.status == Status.ACCEPTED


def test_tampered_verdicts_are_ignored_and_no_quorum_is_undecided():
    good = signed_receipt(PEERS[0], 0)
    honest = entry(VALIDATORS[0], good)
    flipped = dict(entry(VALIDATORS[1], good), status="FRAUD", kind="WRONG_REWARD")  # signature no longer matches
    (outcome,) = aggregate_reports([report([honest, flipped])], DOMAIN, **EQUAL)
    assert outcome.status == Status.REJECTED and outcome.finding.kind == Kind.NONE  # undecided, unpaid
    assert contribution_table([outcome]) == {}


def test_a_copy_republished_under_another_epoch_cannot_cancel_the_original():
    good = signed_receipt(PEERS[0], 0, tokens=5)
    wrong_epoch = Finding(Kind.WRONG_EPOCH, "receipt is for epoch 0, published for epoch 1")
    reports = [report([entry(v, good), entry(v, good, wrong_epoch, epoch=1)]) for v in VALIDATORS]
    outcomes = aggregate_reports(reports, DOMAIN, **EQUAL)
    assert [(o.epoch, o.status) for o in outcomes] == [(0, Status.ACCEPTED), (1, Status.REJECTED)]
    assert contribution_table(outcomes) == {PEERS[0].address: 5}


@pytest.mark.parametrize("field", ["receipt", "evidence"])
def test_a_verdict_whose_digests_do_not_match_its_content_is_ignored(field):
    good = signed_receipt(PEERS[0], 0)
    bad = [dict(entry(v, good), **{field: "0x" + "11" * 32}) for v in VALIDATORS]
    assert aggregate_reports([report(bad)], DOMAIN, **EQUAL) == []


def test_a_verdict_on_a_receipt_altered_after_signing_is_ignored():
    good = signed_receipt(PEERS[0], 0)
    inflated = type(good)(dataclasses.replace(good.receipt, samples=9), good.signature)
    assert aggregate_reports([report([entry(v, inflated) for v in VALIDATORS])], DOMAIN, **EQUAL) == []


def test_a_minority_by_stake_cannot_frame_an_honest_peer():
    """Two validators with 29% of the stake sign a made-up FRAUD; the 71% that accepted wins."""
    good = signed_receipt(PEERS[0], 0, tokens=4)
    made_up = Finding(Kind.WRONG_REWARD, "made up", 0, 0)
    stakes = {VALIDATORS[0].address: 15, VALIDATORS[1].address: 14, VALIDATORS[2].address: 71}
    reports = [report([entry(VALIDATORS[0], good, made_up)]), report([entry(VALIDATORS[1], good, made_up)])]
    reports.append(report([entry(VALIDATORS[2], good)]))
    (outcome,) = aggregate_reports(reports, DOMAIN, stakes=stakes, required=67)
    assert outcome.status == Status.ACCEPTED
    assert contribution_table([outcome]) == {PEERS[0].address: 4}


def test_an_accepting_stake_majority_beats_fraud_even_under_a_low_quorum():
    good = signed_receipt(PEERS[0], 0)
    made_up = Finding(Kind.WRONG_PROMPT, "made up", 0, 0)
    stakes = {VALIDATORS[0].address: 10, VALIDATORS[1].address: 45, VALIDATORS[2].address: 45}
    reports = [report([entry(VALIDATORS[0], good, made_up), entry(VALIDATORS[1], good), entry(VALIDATORS[2], good)])]
    (outcome,) = aggregate_reports(reports, DOMAIN, stakes=stakes, required=10)
    assert outcome.status == Status.ACCEPTED


def test_fraud_that_does_not_reproduce_is_never_co_signed():
    """Validators holding 80% cite evidence that the signing validator's re-check does not reproduce."""
    good = signed_receipt(PEERS[0], 0)
    made_up = Finding(Kind.WRONG_LOGPROBS, "made up", 0, 0)
    stakes = {VALIDATORS[0].address: 40, VALIDATORS[1].address: 40, VALIDATORS[2].address: 20}
    reports = [report([entry(VALIDATORS[0], good, made_up), entry(VALIDATORS[1], good, made_up)])]
    reports.append(report([entry(VALIDATORS[2], good)]))
    cited = []

    def recheck(receipt, evidence: CitedEvidence) -> bool:
        cited.append((receipt.receipt.peer, evidence.epoch, evidence.finding.kind))
        return False

    (outcome,) = aggregate_reports(reports, DOMAIN, stakes=stakes, required=67, recheck=recheck)
    assert outcome.status == Status.REJECTED and outcome.finding.kind == Kind.NONE  # undecided: unpaid, no slash
    assert cited and set(cited) == {(PEERS[0].address, 0, Kind.WRONG_LOGPROBS)}
    (trusted,) = aggregate_reports(reports, DOMAIN, stakes=stakes, required=67, recheck=lambda r, e: True)
    assert trusted.status == Status.FRAUD


def test_split_evidence_on_one_receipt_adds_up():
    """A peer that cheats on every record: each validator cites another record (and kind); still FRAUD."""
    bad = signed_receipt(PEERS[1], 0)
    findings = [
        Finding(Kind.WRONG_REWARD, "record 0", 0, 0),
        Finding(Kind.WRONG_LOGPROBS, "record 1", 1, 0),
        Finding(Kind.WRONG_REWARD, "record 2", 2, 0),
    ]
    reports = [report([entry(v, bad, f)]) for v, f in zip(VALIDATORS, findings, strict=True)]
    (outcome,) = aggregate_reports(reports, DOMAIN, **EQUAL)
    assert outcome.status == Status.FRAUD
    assert outcome.finding.kind == Kind.WRONG_REWARD  # the kind with the most stake behind it
    assert len(outcome.verdicts) == 3
    assert contribution_table([outcome]) == {}


def test_a_validator_signing_two_rulings_on_one_receipt_counts_for_neither():
    good = signed_receipt(PEERS[0], 0)
    fraud = Finding(Kind.WRONG_REWARD, "x", 0, 0)
    reports = [report([entry(VALIDATORS[0], good), entry(VALIDATORS[0], good, fraud), entry(VALIDATORS[1], good)])]
    (outcome,) = aggregate_reports(reports, DOMAIN, **EQUAL)
    assert outcome.status == Status.REJECTED and outcome.finding.kind == Kind.NONE  # 1 of 3: no quorum
    assert len(outcome.verdicts) == 1


def test_unstaked_validators_do_not_count_and_equal_stakes_helper():
    stakes, required = equal_stakes([v.address for v in VALIDATORS])
    assert required == 3 * 6_667 // 10_000 + 1 == 3  # ceil(2.0001)
    good = signed_receipt(PEERS[0], 0)
    reports = [report([entry(VALIDATORS[0], good), entry(VALIDATORS[1], good)])]
    (outcome,) = aggregate_reports(reports, DOMAIN, stakes={**stakes, VALIDATORS[1].address: 0}, required=2)
    assert outcome.status == Status.REJECTED  # only VALIDATORS[0]'s stake counts
    with pytest.raises(ValueError):
        aggregate_reports(reports, DOMAIN, stakes=stakes, required=0)
