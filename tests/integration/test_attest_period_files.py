"""Settling from files on an in-process chain: validators sign documents, the aggregator submits and slashes."""

import pytest

from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord
from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import TOKEN, DeployParams
from coordination.errors import AttestationError
from coordination.verify.payout import load_claim_file, sign_period_document, submit_period_documents
from coordination.verify.rulings import Finding, Kind, Verdict, sign_verdict, verdict_json

pytestmark = pytest.mark.chain

RUN_KEY = b"\x03" * 32
REWARD = 999_999


@pytest.fixture
def chain():
    from coordination.chain.sandbox import Sandbox, register_validators

    box = Sandbox.create(
        accounts=6,
        params=DeployParams(
            min_validator_stake=1_000 * TOKEN, validator_quorum_bps=6_000, challenge_window=60, min_peer_bond=TOKEN
        ),
    )
    validators, peers = box.accounts[:3], box.accounts[3:6]
    for p in peers:
        box.approve_and_stake(p, 10 * TOKEN)  # the peers' bonds
    register_validators(box, {v: 1_000 * TOKEN for v in validators})
    box.c.token.approve(box.c.ledger.address, REWARD, sender=box.deployer)
    box.c.ledger.fund(REWARD, sender=box.deployer)
    return box, validators, peers


def receipt(box, peer, tokens):
    records = [
        RolloutRecord.build(
            slot=0,
            generation=0,
            task_seed=1,
            task_index=2,
            prompt="Q",
            completion="y" * tokens,
            completion_ids=list(range(tokens)),
            reward=0.0,
            logprobs=[-1.0] * tokens,
        )
    ]
    r = build_receipt(run_id_bytes32=RUN_KEY, epoch=0, peer=peer.address, records=records, checkpoint_cid="bafy")
    return sign_receipt(r, peer.key, box.c.ledger.domain().as_dict())


def reports(box, validators, peers):
    domain = box.c.ledger.domain().as_dict()
    fraud = Finding(Kind.FABRICATED_COMPLETION, "8/8 tokens are not the seeded draws", 0, 0)
    receipts = [receipt(box, peers[0], 6), receipt(box, peers[1], 2), receipt(box, peers[2], 5)]
    out = []
    for v in validators:
        entries = []
        for i, signed in enumerate(receipts):
            verdict = Verdict.of(signed.receipt.digest(domain), signed.receipt, fraud if i == 2 else None)
            entries.append(verdict_json(sign_verdict(verdict, v.key, domain), domain, signed))
        out.append({"verdicts": entries})
    return out


def test_documents_settle_the_period_pay_exactly_and_slash_the_fraud(chain, tmp_path):
    box, validators, peers = chain
    reps = reports(box, validators, peers)
    snapshot = chain_now(box.w3) - 1
    docs = [
        sign_period_document(
            account=v,
            reports=reps,
            clients=box.c,
            run_key=RUN_KEY,
            period=4,
            first_epoch=0,
            last_epoch=0,
            payout=REWARD,
            snapshot=snapshot,
            slash_bps=5_000,
        )
        for v in validators
    ]
    assert len({d["root"] for d in docs}) == 1 and docs[0]["table"] == {peers[0].address: 6, peers[1].address: 2}
    box.c.staking.request_unstake(10 * TOKEN, sender=peers[2].address)  # the cheater tries to unbond first
    result = submit_period_documents(docs[:2], clients=box.c, sender=box.deployer, claims_dir=tmp_path)
    assert result["slashed"] == [
        {"peer": peers[2].address, "bps": 5_000, "amount": 5 * TOKEN, "evidence": docs[0]["slashes"][0]["evidence"]}
    ]
    assert box.c.staking.pending_withdrawal(peers[2].address)[0] == 5 * TOKEN
    advance_time(box.w3, 61)
    for path in result["claims"]:
        claim = load_claim_file(path)
        before = box.c.token.balance_of(claim.peer)
        box.c.ledger.claim(claim.run_key, 4, claim.peer, claim.units, list(claim.proof), sender=claim.peer)
        assert box.c.token.balance_of(claim.peer) - before == REWARD * claim.units // 8 == claim.amount


def test_one_validators_document_is_not_a_quorum(chain, tmp_path):
    from coordination.chain.eip712 import QuorumRejected

    box, validators, peers = chain
    reps = reports(box, validators, peers)
    doc = sign_period_document(
        account=validators[0],
        reports=reps,
        clients=box.c,
        run_key=RUN_KEY,
        period=1,
        first_epoch=0,
        last_epoch=0,
        payout=REWARD,
        snapshot=chain_now(box.w3) - 1,
    )
    with pytest.raises(QuorumRejected) as err:
        submit_period_documents([doc], clients=box.c, sender=box.deployer, claims_dir=tmp_path)
    assert err.value.error_name == "QuorumNotReached"
    with pytest.raises(AttestationError):
        submit_period_documents([], clients=box.c, sender=box.deployer, claims_dir=tmp_path)


def test_a_peer_without_a_bond_at_the_snapshot_is_left_out_and_the_others_share_its_part(chain, tmp_path):
    box, validators, peers = chain
    reps = reports(box, validators, peers)
    box.c.staking.request_unstake(10 * TOKEN, sender=peers[1].address)  # peers[1] drops its bond...
    advance_time(box.w3, 1)
    snapshot = chain_now(box.w3) - 1  # ...before the period's snapshot
    doc = sign_period_document(
        account=validators[0], reports=reps, clients=box.c, run_key=RUN_KEY, period=2, first_epoch=0,
        last_epoch=0, payout=REWARD, snapshot=snapshot,
    )  # fmt: skip
    assert doc["table"] == {peers[0].address: 6} and doc["totalUnits"] == 6
