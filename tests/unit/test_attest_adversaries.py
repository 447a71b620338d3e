"""The adversary enum against one honest run and the deployed `hivetune validate` defaults.

Facts come from `facts_for_run` exactly as the CLI builds them (canonical checkpoint and round from the
epoch board, caps from the spec, EOS and vocabulary of the base model); the validator draws at the
default rate (`DEFAULT_ROLLOUT_RATE`). Every cheat is caught and earns nothing; FRAUD where conclusive.
"""

import dataclasses
import json
from types import SimpleNamespace

import pytest
import torch
from eth_account import Account
from support.adversaries import Cheat, PeerContext, publish_as
from support.honest_rollouts import RolloutPlan, generate_rollouts

from coordination.attest.receipts import contribution_digest
from coordination.attest.rollout_store import RolloutDirectory, records_with_proofs
from coordination.chain.eip712 import attest_domain, run_key
from coordination.checkpoints.addressing import block_cid
from coordination.swarm.runspec import run_spec_from_dict
from coordination.verify.payout import contribution_table
from coordination.verify.rulings import Kind, Status, reconcile_epoch
from coordination.verify.run_facts import facts_for_run
from coordination.verify.validator import DEFAULT_ROLLOUT_RATE, Validator, validate_epochs

DOMAIN = attest_domain(chain_id=31337)
VALIDATOR = Account.from_key("0x" + "7a" * 32)
EPOCH = 3
EXPECTED = {
    Cheat.HONEST: (Status.ACCEPTED, {Kind.NONE}),
    Cheat.FABRICATED_REWARDS: (Status.FRAUD, {Kind.WRONG_REWARD}),
    Cheat.FABRICATED_COMPLETIONS: (Status.FRAUD, {Kind.FABRICATED_COMPLETION}),
    Cheat.NO_MODEL_FREELOADER: (Status.FRAUD, {Kind.FABRICATED_COMPLETION}),
    Cheat.OVERLONG_COMPLETIONS: (Status.FRAUD, {Kind.COUNT_MISMATCH}),
    Cheat.DEGENERATE_ADAPTER: (Status.REJECTED, {Kind.WRONG_CHECKPOINT}),
    Cheat.CHEAPER_MODEL: (Status.FRAUD, {Kind.FABRICATED_COMPLETION, Kind.WRONG_LOGPROBS}),
    Cheat.INFLATED_SAMPLES: (Status.FRAUD, {Kind.COUNT_MISMATCH}),
    Cheat.REPLAYED_EPOCH: (Status.FRAUD, {Kind.WRONG_PROMPT}),
    Cheat.REPLAYED_RUN: (Status.REJECTED, {Kind.WRONG_RUN}),
    Cheat.WRONG_PROMPTS: (Status.FRAUD, {Kind.WRONG_PROMPT}),
    Cheat.NOT_IN_ROUND: (Status.REJECTED, {Kind.NOT_IN_ROUND}),
    Cheat.OUT_OF_VOCAB: (Status.FRAUD, {Kind.FABRICATED_COMPLETION}),
}


def tiny_model(seed: int, tok):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.models import tiny_config

    torch.manual_seed(seed)
    config = tiny_config(
        tok, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64
    )
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(AutoModelForCausalLM.from_config(config), lora).eval()


def account_of(cheat: Cheat):
    return Account.from_key(bytes([0x30] * 31 + [list(Cheat).index(cheat) + 1]))


def contribution_of(account, epoch: int) -> str:
    return str(block_cid(f"grad {account.address} {epoch}".encode(), "raw"))


class Board:
    """The epoch board as validators read it: epoch k's canonical checkpoint, the members of its round."""

    def __init__(self, members):
        self.members = members

    def canonical(self, epoch):
        return SimpleNamespace(cid=f"bafy-canonical-{epoch}")

    def round_of(self, epoch):
        return {"members": [{"address": a, "contribution": c} for a, c in self.members.get(epoch - 1, [])]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import os

    os.environ.setdefault("HIVETUNE_HOME", str(tmp_path_factory.mktemp("home")))
    from trainer.models import build_char_tokenizer

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    spec = run_spec_from_dict(
        {"task": {"name": "arithmetic", "seed": 3},
         "grpo": {"num_generations": 4, "per_device_train_batch_size": 8, "max_completion_length": 16,
                  "temperature": 0.7}}
    )  # fmt: skip
    model, cheaper = tiny_model(1, tok), tiny_model(2, tok)
    members = {e: [(account_of(c).address, contribution_of(account_of(c), e)) for c in Cheat] for e in range(6)}
    facts = facts_for_run(spec, domain=DOMAIN, board=Board(members), load_policy=lambda cid: (model, tok))
    return SimpleNamespace(spec=spec, tok=tok, model=model, cheaper=cheaper, facts=facts)


def honest_records(w, account, epoch: int, prompts: int | None = None):
    f = w.facts
    plan = RolloutPlan(
        run_id=f.run_id, epoch=epoch, peer=account.address, task_seed=f.task_seed,
        num_prompts=prompts or f.prompts_per_epoch, group_size=f.group_size, max_new_tokens=f.max_new_tokens,
        temperature=f.temperature,
    )  # fmt: skip
    return generate_rollouts(w.model, w.tok, f.task, plan, reward_fn=f.reward_fn)


def context(w, account, epoch: int) -> PeerContext:
    f = w.facts
    return PeerContext(
        account, f.run_id_bytes32, DOMAIN, f"bafy-canonical-{epoch}", w.model, w.tok, f.task, f.reward_fn,
        f.max_new_tokens, contribution=contribution_digest(contribution_of(account, epoch)), run_id=f.run_id,
        temperature=f.temperature, other_model=w.cheaper,
    )  # fmt: skip


def published(w, cheat: Cheat):
    account = account_of(cheat)
    records = honest_records(w, account, EPOCH)
    previous = honest_records(w, account, EPOCH - 1)
    return publish_as(cheat, records, context(w, account, EPOCH), epoch=EPOCH, previous=previous)


def deployed_validator(w, fetch):
    return Validator(private_key=VALIDATOR.key, facts=w.facts, fetch=fetch, rollout_rate=DEFAULT_ROLLOUT_RATE)


@pytest.fixture(scope="module")
def all_published(world):
    return {cheat: published(world, cheat) for cheat in Cheat}


@pytest.mark.parametrize("cheat", list(Cheat), ids=lambda c: c.value)
def test_each_cheat_is_caught_and_unpaid_under_the_deployed_defaults(world, all_published, cheat):
    records, signed = all_published[cheat]
    validator = deployed_validator(world, lambda s: records_with_proofs(records))
    finding = validator.find(signed, EPOCH)
    status, kinds = EXPECTED[cheat]
    assert (finding.status if finding else Status.ACCEPTED) == status, finding
    assert (finding.kind if finding else Kind.NONE) in kinds, finding


def test_prompts_beyond_the_assignment_are_capped(world):
    account = account_of(Cheat.HONEST)
    extra = honest_records(world, account, EPOCH, prompts=world.facts.prompts_per_epoch + 1)  # one more group
    _, signed = publish_as(Cheat.HONEST, extra, context(world, account, EPOCH), epoch=EPOCH)
    finding = deployed_validator(world, lambda s: records_with_proofs(extra)).find(signed, EPOCH)
    assert (finding.kind, finding.status) == (Kind.COUNT_MISMATCH, Status.FRAUD)
    assert "assignment allows 8" in finding.detail


def test_a_malformed_record_rejects_its_receipt_and_never_stops_the_others(world, all_published, tmp_path):
    store = RolloutDirectory(tmp_path)
    for records, signed in all_published.values():
        store.put(signed, records)
    bad_records, bad = all_published[Cheat.NOT_IN_ROUND]
    folder = store.put(bad, bad_records)
    lines = (folder / "records.jsonl").read_text().splitlines()
    junk = dict(json.loads(lines[0]), completion_ids=["x", None])
    (folder / "records.jsonl").write_text("\n".join([json.dumps(junk), *lines[1:]]) + "\n")
    receipts = store.receipts(run_key(world.spec.run_id).hex(), EPOCH)
    assert len(receipts) == len(Cheat) - 1  # the other-run replay is filed under its own run
    report = validate_epochs(deployed_validator(world, store.fetch), {EPOCH: receipts})
    by_peer = {v["peer"]: v for v in report["verdicts"]}
    assert (by_peer[bad.receipt.peer]["status"], by_peer[bad.receipt.peer]["kind"]) == ("REJECTED", "MALFORMED_RECORD")
    assert by_peer[account_of(Cheat.HONEST).address]["status"] == "ACCEPTED"
    assert report["counts"]["ACCEPTED"] == 1


def test_only_the_honest_peer_is_paid_and_only_for_rollouts_that_entered_the_round(world, all_published):
    served = {s.key: r for r, s in all_published.values()}
    validator = deployed_validator(world, lambda s: records_with_proofs(served[s.key]))
    outcomes = reconcile_epoch(
        [validator],
        [s for _, s in all_published.values()],
        epoch=EPOCH,
        stakes={validator.account.address: 1},
        required=1,
    )
    honest_records_, honest = all_published[Cheat.HONEST]
    assert contribution_table(outcomes) == {honest.receipt.peer: sum(r.completion_tokens for r in honest_records_)}
    # the same honest work whose gradient missed the round earns nothing
    missed = Board({EPOCH: []})
    facts = dataclasses.replace(world.facts, **_checks(missed))
    v = Validator(private_key=VALIDATOR.key, facts=facts, fetch=lambda s: records_with_proofs(honest_records_))
    assert v.find(honest, EPOCH).kind == Kind.NOT_IN_ROUND


def _checks(board):
    from coordination.verify.run_facts import board_checks

    return board_checks(board)


@pytest.mark.slow
@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (20, 1.0), (0, 0.9)])
def test_honest_receipts_are_never_flagged_over_many_seeds(world, top_k, top_p):
    facts = dataclasses.replace(world.facts, top_k=top_k, top_p=top_p)
    checked = 0
    for epoch in range(6):
        for cheat in (Cheat.HONEST, Cheat.FABRICATED_REWARDS, Cheat.NOT_IN_ROUND):  # three peers' addresses
            account = account_of(cheat)
            f = facts
            plan = RolloutPlan(
                run_id=f.run_id, epoch=epoch, peer=account.address, task_seed=f.task_seed,
                num_prompts=f.prompts_per_epoch, group_size=f.group_size, max_new_tokens=f.max_new_tokens,
                temperature=f.temperature, top_k=top_k, top_p=top_p,
            )  # fmt: skip
            records = generate_rollouts(world.model, world.tok, f.task, plan, reward_fn=f.reward_fn)
            _, signed = publish_as(Cheat.HONEST, records, context(world, account, epoch), epoch=epoch)
            v = Validator(private_key=VALIDATOR.key, facts=f, fetch=lambda s, r=records: records_with_proofs(r),
                          rollout_rate=1.0)  # fmt: skip
            assert v.find(signed, epoch) is None, (epoch, account.address)
            checked += 1
    assert checked == 18


def test_round_membership_needs_the_peers_own_address_and_contribution():
    from coordination.attest.receipts import NO_CONTRIBUTION
    from coordination.verify.run_facts import board_checks

    alice, bob = account_of(Cheat.HONEST).address, account_of(Cheat.NOT_IN_ROUND).address
    grad = contribution_of(account_of(Cheat.HONEST), 0)
    board = Board({0: [(alice, grad), (bob, None)]})
    board.members[0].append(("not an address", "not a cid"))  # an announcer's junk entry counts for nobody
    entered = board_checks(board)["entered_round"]
    assert entered(0, alice, contribution_digest(grad))
    assert entered(0, alice.lower(), contribution_digest(grad))
    assert not entered(0, bob, contribution_digest(grad))  # claiming another member's contribution
    assert not entered(0, bob, NO_CONTRIBUTION)  # a member listed without a contribution vouches for nothing
    assert not entered(1, alice, contribution_digest(grad))  # another epoch's round
    assert board_checks(Board({}))["checkpoint_of_epoch"](5) == "bafy-canonical-5"


def test_with_delayed_updates_epoch_k_is_audited_under_the_state_of_k_minus_1():
    """averaging.delayed_updates: epoch k's rollouts come from canonical state k-1 (epoch 0 from state 0), so that
    is the checkpoint the audit compares a receipt with (audit.check_identity: any other is WRONG_CHECKPOINT)."""
    from coordination.swarm.runspec import run_spec_from_dict
    from coordination.verify.run_facts import board_checks

    sync = run_spec_from_dict({"averaging": {"delayed_updates": False}})
    delayed = run_spec_from_dict({"averaging": {"delayed_updates": True}})
    assert sync.run_id != delayed.run_id  # a different protocol is a different run
    of = board_checks(Board({}), delayed)["checkpoint_of_epoch"]
    assert [of(e) for e in (0, 1, 5)] == ["bafy-canonical-0", "bafy-canonical-0", "bafy-canonical-4"]
    assert board_checks(Board({}), sync)["checkpoint_of_epoch"](5) == "bafy-canonical-5"


def _ruling(finding):
    return None if finding is None else (finding.status, finding.kind, finding.slot, finding.generation)


def test_one_batched_audit_of_every_cheat_rules_as_auditing_them_one_at_a_time(world, all_published):
    served = {s.key: r for r, s in all_published.values()}
    receipts = [s for _, s in all_published.values()]
    for rate in (DEFAULT_ROLLOUT_RATE, 1.0):
        v = Validator(private_key=VALIDATOR.key, facts=world.facts, fetch=lambda s: records_with_proofs(served[s.key]),
                      rollout_rate=rate)  # fmt: skip
        one_by_one = [_ruling(v.find(s, EPOCH)) for s in receipts]
        assert [_ruling(f) for f in v.find_many(receipts, EPOCH)] == one_by_one
        assert one_by_one[list(Cheat).index(Cheat.HONEST)] is None
        assert sum(r is None for r in one_by_one) == 1


def test_a_tampered_record_among_many_honest_receipts_is_caught_and_only_it(world):
    from support.adversaries import fabricate_completion

    receipts, served = [], {}
    for i, cheat in enumerate(list(Cheat)[:5]):  # five round members, honest except one record of one peer
        account = account_of(cheat)
        ctx = context(world, account, EPOCH)
        records = honest_records(world, account, EPOCH)
        if i == 2:
            records = [fabricate_completion(ctx, r) if j == 5 else r for j, r in enumerate(records)]
        records, signed = publish_as(Cheat.HONEST, records, ctx, epoch=EPOCH)
        receipts.append(signed)
        served[signed.key] = records
    v = Validator(private_key=VALIDATOR.key, facts=world.facts, fetch=lambda s: records_with_proofs(served[s.key]),
                  rollout_rate=1.0)  # fmt: skip
    findings = v.find_many(receipts, EPOCH)
    assert [f is None for f in findings] == [True, True, False, True, True]
    tampered = sorted(served[receipts[2].key], key=lambda r: (r.slot, r.generation))[5]
    assert (findings[2].kind, findings[2].slot, findings[2].generation) == (
        Kind.FABRICATED_COMPLETION, tampered.slot, tampered.generation,
    )  # fmt: skip
    assert v.cost.forward_passes == sum(len(r) for r in served.values())  # every record of every receipt recomputed
