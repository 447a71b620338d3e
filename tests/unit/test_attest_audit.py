"""Receipt audits on a real tiny model: honest work always passes, each tampering fails with its own kind."""

import dataclasses

import pytest
import torch
from eth_account import Account
from support.honest_rollouts import RolloutPlan, generate_rollouts

from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.rollout_store import RolloutDirectory, records_with_proofs
from coordination.attest.rollouts import task_reward
from coordination.chain.eip712 import attest_domain
from coordination.verify.audit import draw_rollouts, rollouts_to_check
from coordination.verify.rulings import Finding, Kind, Status, reconcile_epoch
from coordination.verify.run_facts import RunFacts
from coordination.verify.validator import Validator

RUN = "bafy-unit-run"
RUN_KEY = b"\x05" * 32
DOMAIN = attest_domain(chain_id=31337, verifying_contract="0x" + "ab" * 20)
PEERS = [Account.from_key(bytes([0x10] * 31 + [i + 1])) for i in range(3)]
VALIDATORS = [Account.from_key(bytes([0x20] * 31 + [i + 1])) for i in range(3)]


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config
    from trainer.tasks import get_task

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    torch.manual_seed(1)
    config = tiny_config(
        tok, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64
    )
    return AutoModelForCausalLM.from_config(config).eval(), tok, get_task("arithmetic", digits=2)


def facts_for(tiny, temperature=1.0, max_new_tokens=6):
    model, tok, task = tiny
    return RunFacts(
        run_id=RUN,
        run_id_bytes32=RUN_KEY,
        domain=DOMAIN,
        task=task,
        task_seed=11,
        reward_fn=task_reward(task),
        group_size=2,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        load_policy=lambda cid: (model, tok),
    )


def honest(tiny, facts, peer, epoch, prompts=2):
    model, tok, task = tiny
    plan = RolloutPlan(
        run_id=RUN,
        epoch=epoch,
        peer=peer.address,
        task_seed=facts.task_seed,
        num_prompts=prompts,
        group_size=facts.group_size,
        max_new_tokens=facts.max_new_tokens,
        temperature=facts.temperature,
    )
    records = generate_rollouts(model, tok, task, plan, reward_fn=facts.reward_fn)
    return records, publish(records, peer, epoch)


def publish(records, peer, epoch):
    receipt = build_receipt(
        run_id_bytes32=RUN_KEY, epoch=epoch, peer=peer.address, records=records, checkpoint_cid="bafy-ck"
    )
    return sign_receipt(receipt, peer.key, DOMAIN)


def served(records):
    return lambda signed: records_with_proofs(records)


def audit(facts, signed, records, *, rate=1.0, key=VALIDATORS[0].key):
    return Validator(private_key=key, facts=facts, fetch=served(records), rollout_rate=rate).find(
        signed, signed.receipt.epoch
    )


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_honest_work_is_never_flagged_over_many_seeds(tiny, temperature):
    facts = facts_for(tiny, temperature=temperature)
    for epoch in range(6):
        for peer in PEERS:
            records, signed = honest(tiny, facts, peer, epoch)
            assert audit(facts, signed, records) is None, (epoch, peer.address)


@pytest.fixture(scope="module")
def one_epoch(tiny):
    facts = facts_for(tiny)
    records, signed = honest(tiny, facts, PEERS[0], epoch=4, prompts=3)
    return facts, records, signed


def test_one_tampered_reward_among_many_is_caught_even_without_forward_passes(one_epoch):
    facts, records, _ = one_epoch
    tampered = list(records)
    tampered[4] = dataclasses.replace(tampered[4], reward=tampered[4].reward + 1.0)
    finding = audit(facts, publish(tampered, PEERS[0], 4), tampered, rate=0.0)
    assert finding.kind == Kind.WRONG_REWARD and (finding.slot, finding.generation) == (2, 0)


@pytest.mark.parametrize("shift_milli,caught", [(5, False), (10, False), (11, True), (400, True)])
def test_logprobs_are_checked_within_the_tolerance(one_epoch, shift_milli, caught):
    facts, records, _ = one_epoch
    tampered = list(records)
    lp = list(tampered[0].logprobs_milli)
    lp[-1] += shift_milli
    tampered[0] = dataclasses.replace(tampered[0], logprobs_milli=tuple(lp))
    finding = audit(facts, publish(tampered, PEERS[0], 4), tampered)
    assert (finding is not None and finding.kind == Kind.WRONG_LOGPROBS) == caught


def test_withheld_or_altered_records_are_rejected_not_fraud(one_epoch):
    facts, records, signed = one_epoch
    proven = records_with_proofs(records)
    withheld = Validator(private_key=VALIDATORS[0].key, facts=facts, fetch=lambda s: proven[:-1]).find(signed, 4)
    assert withheld.kind == Kind.RECORDS_UNAVAILABLE and withheld.status == Status.REJECTED
    altered = [
        (dataclasses.replace(r, reward=0.5), p) if i == 0 else (r, p)
        for i, (r, p) in enumerate(records_with_proofs(records))
    ]
    finding = Validator(private_key=VALIDATORS[0].key, facts=facts, fetch=lambda s: altered).find(signed, 4)
    assert finding.kind == Kind.RECORD_NOT_IN_ROOT and finding.status == Status.REJECTED


def test_duplicated_rollouts_are_a_count_mismatch(one_epoch):
    facts, records, _ = one_epoch
    padded = list(records) + [dataclasses.replace(records[0], generation=0)] * 2
    assert audit(facts, publish(padded, PEERS[0], 4), padded).kind == Kind.COUNT_MISMATCH


def test_truncated_completion_without_eos_is_fabricated(one_epoch):
    facts, records, _ = one_epoch
    model, tok = facts.load_policy("x")
    cut = list(records)
    r = cut[1]
    ids = r.completion_ids[:-2]
    cut[1] = dataclasses.replace(
        r,
        completion_ids=ids,
        completion=tok.decode(list(ids), skip_special_tokens=True),
        logprobs_milli=r.logprobs_milli[:-2],
    )
    cut[1] = dataclasses.replace(
        cut[1], reward=facts.reward_fn(cut[1].completion, facts.task.sample(11, r.task_index))
    )
    assert audit(facts, publish(cut, PEERS[0], 4), cut).kind == Kind.FABRICATED_COMPLETION


def test_audit_draws_are_per_validator_reproducible_and_sized_by_rate(one_epoch):
    _, _, signed = one_epoch
    draws = [draw_rollouts(v.key, DOMAIN, signed.receipt, count=100, rate=0.05) for v in VALIDATORS]
    assert all(len(d) == 5 == rollouts_to_check(100, 0.05) for d in draws)
    assert draws[0] == draw_rollouts(VALIDATORS[0].key, DOMAIN, signed.receipt, count=100, rate=0.05)
    assert len({tuple(d) for d in draws}) == 3
    assert rollouts_to_check(3, 0.01) == 1 and rollouts_to_check(0, 0.5) == 0


class LyingValidator(Validator):
    """Accuses every receipt of wrong rewards."""

    def find(self, signed, epoch, drawn=None):
        return Finding(Kind.WRONG_REWARD, "made up", 0, 0)


def test_one_lying_validator_cannot_get_an_honest_peer_flagged(tiny, one_epoch):
    facts, records, signed = one_epoch
    fetch = served(records)
    validators = [LyingValidator(private_key=VALIDATORS[0].key, facts=facts, fetch=fetch)] + [
        Validator(private_key=v.key, facts=facts, fetch=fetch) for v in VALIDATORS[1:]
    ]
    stakes = {v.address: 1 for v in VALIDATORS}  # equal stake: the liar holds a third
    (outcome,) = reconcile_epoch(validators, [signed], epoch=4, stakes=stakes, required=2)
    assert outcome.status == Status.ACCEPTED
    assert {v.signer(DOMAIN) for v in outcome.verdicts} == {v.address for v in VALIDATORS}


def test_rollout_directory_round_trips_receipts_and_proven_records(one_epoch, tmp_path):
    facts, records, signed = one_epoch
    store = RolloutDirectory(tmp_path)
    store.put(signed, records)
    assert store.receipts(RUN_KEY.hex(), 4) == [signed]
    assert store.receipts(RUN_KEY.hex(), 5) == []
    assert audit(facts, signed, records) is None
    assert Validator(private_key=VALIDATORS[1].key, facts=facts, fetch=store.fetch).find(signed, 4) is None


def test_a_validator_adopts_another_validators_finding_only_after_reproducing_it(tiny, one_epoch):
    from support.adversaries import PeerContext, fabricate_completion

    from coordination.verify.validator import validate_epochs

    facts, records, _ = one_epoch
    model, tok, task = tiny
    ctx = PeerContext(PEERS[0], RUN_KEY, DOMAIN, "bafy-ck", model, tok, task, facts.reward_fn, facts.max_new_tokens)
    cheated = [fabricate_completion(ctx, r) if i == 3 else r for i, r in enumerate(records)]
    signed = publish(cheated, PEERS[0], 4)
    thorough = Validator(private_key=VALIDATORS[0].key, facts=facts, fetch=served(cheated), rollout_rate=1.0)
    found = validate_epochs(thorough, {4: [signed]})
    assert found["verdicts"][0]["kind"] == "FABRICATED_COMPLETION"

    def lazy():
        return Validator(
            private_key=VALIDATORS[1].key, facts=facts, fetch=served(cheated), rollout_rate=0.0, min_rollouts=0
        )

    assert validate_epochs(lazy(), {4: [signed]})["verdicts"][0]["status"] == "ACCEPTED"
    adopted = validate_epochs(lazy(), {4: [signed]}, [found])["verdicts"][0]
    assert (adopted["status"], adopted["kind"]) == ("FRAUD", "FABRICATED_COMPLETION")
    made_up = {"verdicts": [dict(found["verdicts"][0], kind="WRONG_REWARD", slot=0, generation=0)]}
    assert validate_epochs(lazy(), {4: [signed]}, [made_up])["verdicts"][0]["status"] == "ACCEPTED"


def test_receipts_signed_by_others_or_under_another_checkpoint_are_rejected_before_any_work(one_epoch):
    from coordination.attest.receipts import SignedReceipt

    facts, records, signed = one_epoch
    forged = sign_receipt(signed.receipt, PEERS[1].key, DOMAIN)  # someone else signs the peer's receipt
    finding = audit(facts, forged, records)
    assert (finding.kind, finding.status) == (Kind.BAD_SIGNATURE, Status.REJECTED)
    wrong_chain = sign_receipt(signed.receipt, PEERS[0].key, attest_domain(chain_id=1))
    assert audit(facts, SignedReceipt(wrong_chain.receipt, wrong_chain.signature), records).kind == Kind.BAD_SIGNATURE
    pinned = dataclasses.replace(facts, checkpoint_of_epoch=lambda epoch: "bafy-the-real-one")
    v = Validator(private_key=VALIDATORS[0].key, facts=pinned, fetch=served(records), rollout_rate=1.0)
    assert v.find(signed, 4).kind == Kind.WRONG_CHECKPOINT
    assert v.cost.forward_passes == 0 and v.cost.records_checked_cheaply == 0
