"""Aggregating verdict reports: only checked, registered, quorum-backed rulings count; copies cannot hurt originals."""

import dataclasses

import pytest
from eth_account import Account

from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord
from coordination.attest.typed_data import attest_domain
from coordination.verify.aggregate import rulings
from coordination.verify.contributions import contribution_table
from coordination.verify.validate_run import verdict_json
from coordination.verify.verdicts import Finding, Kind, Status, Verdict, sign_verdict

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


def registered():
    return {v.address for v in VALIDATORS}


def test_quorum_of_accepts_pays_and_quorum_of_fraud_forfeits():
    good, bad = signed_receipt(PEERS[0], 0, tokens=4), signed_receipt(PEERS[1], 0)
    fraud = Finding(Kind.WRONG_REWARD, "claimed 1.0, recomputed 0.0", 0, 0)
    reports = [
        report([entry(VALIDATORS[i], good), entry(VALIDATORS[i], bad, fraud if i < 2 else None)]) for i in range(3)
    ]
    outcomes = {o.peer: o for o in rulings(reports, DOMAIN, validators=registered(), quorum=2)}
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
    (outcome,) = rulings(reports, DOMAIN, validators=registered(), quorum=2)
    assert outcome.status == Status.ACCEPTED


def test_tampered_verdicts_are_ignored_and_no_quorum_is_undecided():
    good = signed_receipt(PEERS[0], 0)
    honest = entry(VALIDATORS[0], good)
    flipped = dict(entry(VALIDATORS[1], good), status="FRAUD", kind="WRONG_REWARD")  # signature no longer matches
    (outcome,) = rulings([report([honest, flipped])], DOMAIN, validators=registered(), quorum=2)
    assert outcome.status == Status.REJECTED and outcome.finding.kind == Kind.NONE  # undecided, unpaid
    assert contribution_table([outcome]) == {}


def test_a_copy_republished_under_another_epoch_cannot_cancel_the_original():
    good = signed_receipt(PEERS[0], 0, tokens=5)
    wrong_epoch = Finding(Kind.WRONG_EPOCH, "receipt is for epoch 0, published for epoch 1")
    reports = [report([entry(v, good), entry(v, good, wrong_epoch, epoch=1)]) for v in VALIDATORS]
    outcomes = rulings(reports, DOMAIN, validators=registered(), quorum=2)
    assert [(o.epoch, o.status) for o in outcomes] == [(0, Status.ACCEPTED), (1, Status.REJECTED)]
    assert contribution_table(outcomes) == {PEERS[0].address: 5}


@pytest.mark.parametrize("field", ["receipt", "evidence"])
def test_a_verdict_whose_digests_do_not_match_its_content_is_ignored(field):
    good = signed_receipt(PEERS[0], 0)
    bad = [dict(entry(v, good), **{field: "0x" + "11" * 32}) for v in VALIDATORS]
    assert rulings([report(bad)], DOMAIN, validators=registered(), quorum=2) == []


def test_a_verdict_on_a_receipt_altered_after_signing_is_ignored():
    good = signed_receipt(PEERS[0], 0)
    inflated = type(good)(dataclasses.replace(good.receipt, samples=9), good.signature)
    assert rulings([report([entry(v, inflated) for v in VALIDATORS])], DOMAIN, validators=registered(), quorum=2) == []
