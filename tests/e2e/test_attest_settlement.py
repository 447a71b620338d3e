"""A whole attested payout period on an in-process chain: 3 validators, 3 honest peers, one cheater per kind.

Every peer runs a real (random-init) tiny Qwen2 with verifiable seeded sampling; validators audit by
recomputation, reconcile findings, sign the contribution root, and the aggregator settles the period
on ContributionLedger; peers claim with their claim files; conclusive cheaters are slashed.
"""

import pytest
import torch
from support.adversaries import Cheat, PeerContext, publish_as
from support.honest_rollouts import RolloutPlan, generate_rollouts

from coordination.attest.rollout_store import RolloutDirectory
from coordination.attest.rollouts import task_reward
from coordination.chain.claims import write_claim_files
from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import TOKEN, DeployParams
from coordination.chain.eip712 import run_key
from coordination.errors import ChainError
from coordination.verify.payout import (
    contribution_table,
    load_claim_file,
    payout_rows,
    payout_shares,
    period_settlement,
    settle_period,
    sign_contribution_period,
    slash_fraud,
)
from coordination.verify.rulings import Kind, Status, reconcile_epoch
from coordination.verify.run_facts import RunFacts
from coordination.verify.validator import Validator

pytestmark = [pytest.mark.chain, pytest.mark.slow]

RUN_ID = "bafy-test-run-attest"
CHECKPOINT = "bafy-checkpoint-epoch0"
CHEATS = [
    Cheat.FABRICATED_REWARDS,
    Cheat.FABRICATED_COMPLETIONS,
    Cheat.INFLATED_SAMPLES,
    Cheat.REPLAYED_EPOCH,
    Cheat.WRONG_PROMPTS,
    Cheat.REPLAYED_RUN,
]
EXPECTED = {  # (kind of the agreed finding, slashed?)
    Cheat.FABRICATED_REWARDS: (Kind.WRONG_REWARD, True),
    Cheat.FABRICATED_COMPLETIONS: (Kind.FABRICATED_COMPLETION, True),
    Cheat.INFLATED_SAMPLES: (Kind.COUNT_MISMATCH, True),
    Cheat.REPLAYED_EPOCH: (Kind.WRONG_PROMPT, True),
    Cheat.WRONG_PROMPTS: (Kind.WRONG_PROMPT, True),
    Cheat.REPLAYED_RUN: (Kind.WRONG_RUN, False),
}
PEER_STAKE = 100 * TOKEN
REWARD = 10**18 + 7  # odd, so the floor in reward * units / totalUnits matters


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config
    from trainer.tasks import get_task

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        tiny_config(
            tok,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
        )
    ).eval()
    return model, tok, get_task("arithmetic", digits=2)


@pytest.fixture(scope="module")
def world(tiny, tmp_path_factory):
    from coordination.chain.sandbox import Sandbox

    model, tok, task = tiny
    from coordination.chain.sandbox import register_validators

    box = Sandbox.create(
        accounts=3 + 3 + len(CHEATS),
        params=DeployParams(
            min_validator_stake=1_000 * TOKEN, validator_quorum_bps=6_000, challenge_window=3600, unbonding_delay=7200
        ),
    )
    validators_acc, honest, cheaters = box.accounts[:3], box.accounts[3:6], box.accounts[6:]
    for p in honest + cheaters:
        box.approve_and_stake(p, PEER_STAKE)  # the peers' bonds
    register_validators(box, {v: 1_000 * TOKEN for v in validators_acc})
    domain = box.c.ledger.domain().as_dict()
    rk = run_key(RUN_ID)
    facts = RunFacts(
        run_id=RUN_ID,
        run_id_bytes32=rk,
        domain=domain,
        task=task,
        task_seed=3,
        reward_fn=task_reward(task),
        group_size=2,
        max_new_tokens=8,
        temperature=1.0,
        load_policy=lambda cid: (model, tok),
        checkpoint_of_epoch=lambda e: CHECKPOINT,
    )
    store = RolloutDirectory(tmp_path_factory.mktemp("rollouts"))
    return dict(
        box=box,
        validators=validators_acc,
        honest=honest,
        cheaters=dict(zip(CHEATS, cheaters, strict=True)),
        facts=facts,
        store=store,
        rk=rk,
        model=model,
        tok=tok,
        task=task,
        out=tmp_path_factory.mktemp("out"),
    )


def honest_records(w, account, epoch, num_prompts=2):
    f = w["facts"]
    plan = RolloutPlan(
        run_id=RUN_ID,
        epoch=epoch,
        peer=account.address,
        task_seed=f.task_seed,
        num_prompts=num_prompts,
        group_size=f.group_size,
        max_new_tokens=f.max_new_tokens,
        temperature=f.temperature,
    )
    return generate_rollouts(w["model"], w["tok"], w["task"], plan, reward_fn=f.reward_fn)


def context(w, account):
    f = w["facts"]
    return PeerContext(
        account, w["rk"], f.domain, CHECKPOINT, w["model"], w["tok"], w["task"], f.reward_fn, f.max_new_tokens
    )


@pytest.fixture(scope="module")
def period(world):
    """Two epochs of work and audits; returns the agreed outcomes."""
    w, previous, outcomes = world, {}, []
    for epoch in (0, 1):
        for i, account in enumerate(w["honest"]):  # peers of different speeds: 1, 2, 3 prompts per epoch
            records = honest_records(w, account, epoch, num_prompts=1 + i)
            _, signed = publish_as(Cheat.HONEST, records, context(w, account), epoch=epoch)
            w["store"].put(signed, records)
        for cheat, account in w["cheaters"].items():
            records = honest_records(w, account, epoch)
            playing = cheat if (cheat is not Cheat.REPLAYED_EPOCH or epoch == 1) else Cheat.HONEST
            served, signed = publish_as(
                playing, records, context(w, account), epoch=epoch, previous=previous.get(account.address)
            )
            w["store"].put(signed, served, run_id_hex=w["rk"].hex(), epoch=epoch)
            previous[account.address] = records
        validators = [Validator(private_key=a.key, facts=w["facts"], fetch=w["store"].fetch) for a in w["validators"]]
        for v in validators:
            v.require_registered(w["box"].c.staking)
        t = w["snapshot"] = w.get("snapshot") or chain_now(w["box"].w3) - 1
        staking = w["box"].c.staking
        stakes = staking.validator_stakes_at([a.address for a in w["validators"]], t)
        receipts = w["store"].receipts(w["rk"].hex(), epoch)
        outcomes += reconcile_epoch(
            validators, receipts, epoch=epoch, stakes=stakes, required=staking.required_quorum_stake_at(t)
        )
    return outcomes


def test_no_honest_receipt_is_flagged_and_every_cheater_is_caught_with_the_right_kind(world, period):
    honest = {a.address for a in world["honest"]}
    for outcome in period:
        if outcome.peer in honest:
            assert outcome.status == Status.ACCEPTED, outcome.finding
    for cheat, account in world["cheaters"].items():
        mine = [o for o in period if o.peer == account.address and o.status != Status.ACCEPTED]
        kind, conclusive = EXPECTED[cheat]
        assert mine, f"{cheat} was not caught"
        assert {o.finding.kind for o in mine} == {kind}, (cheat, [o.finding for o in mine])
        assert all(o.status == (Status.FRAUD if conclusive else Status.REJECTED) for o in mine)
        assert all(len(o.verdicts) >= 2 for o in mine)  # a stake quorum of validators signed the finding


def test_settlement_pays_honest_peers_exactly_in_proportion_and_cheaters_nothing(world, period):
    box, w = world["box"], world
    table = contribution_table(period)
    assert set(table) == {a.address for a in w["honest"]}
    per_peer = {
        a.address: sum(o.receipt.receipt.completion_tokens for o in period if o.peer == a.address) for a in w["honest"]
    }
    assert table == per_peer
    assert len(set(table.values())) == 3  # unequal work, so proportionality is actually exercised
    box.c.token.approve(box.c.ledger.address, REWARD, sender=box.deployer)
    box.c.ledger.fund(REWARD, sender=box.deployer)
    s = period_settlement(w["rk"], 0, 0, 1, table, REWARD, w["snapshot"])
    signatures = [sign_contribution_period(v, box.c.ledger.domain(), s) for v in w["validators"]]
    tickets = settle_period(box.c.ledger, box.c.staking, s, table, signatures, sender=box.deployer)
    paths = write_claim_files(tickets, w["out"] / "claims")
    first = w["honest"][0].address
    assert [r["state"] for r in payout_rows(first, w["out"] / "claims", ledger=box.c.ledger)] == ["pending"]
    advance_time(box.w3, 3601)
    assert [r["state"] for r in payout_rows(first, w["out"] / "claims", ledger=box.c.ledger)] == ["claimable"]
    expected = payout_shares(table, REWARD)
    total = sum(table.values())
    for path in paths:
        claim = load_claim_file(path)
        before = box.c.token.balance_of(claim.peer)
        box.c.ledger.claim(claim.run_key, claim.period, claim.peer, claim.units, list(claim.proof), sender=claim.peer)
        gained = box.c.token.balance_of(claim.peer) - before
        assert gained == expected[claim.peer] == REWARD * table[claim.peer] // total == claim.amount
    assert sum(expected.values()) <= REWARD < sum(expected.values()) + len(expected)
    rows = payout_rows(first, w["out"] / "claims", ledger=box.c.ledger)
    assert [(r["state"], r["amount"], r["units"]) for r in rows] == [("claimed", expected[first], table[first])]
    mine = load_claim_file(next(p for p in paths if first in p.name))
    with pytest.raises(ChainError) as again:  # a second claim with a valid proof
        box.c.ledger.claim(mine.run_key, 0, first, mine.units, list(mine.proof), sender=first)
    assert again.value.error_name == "AlreadyClaimed"
    for account in w["cheaters"].values():
        with pytest.raises(ChainError) as err:  # any units it might claim have no proof in the root
            box.c.ledger.claim(w["rk"], 0, account.address, 16, [], sender=account.address)
        assert err.value.error_name == "InvalidProof"


def test_conclusive_cheaters_are_slashed_by_validator_quorum(world, period):
    box, w = world["box"], world
    treasury_before = box.c.token.balance_of(box.deployer)
    slashed = set()
    t = chain_now(box.w3) - 1
    for outcome in period:
        if outcome.status == Status.FRAUD and outcome.peer not in slashed:
            slash_fraud(
                box.c.staking, outcome, w["validators"], w["facts"].domain, bps=5_000, snapshot=t, sender=box.deployer
            )
            slashed.add(outcome.peer)
    fraud = next(o for o in period if o.status == Status.FRAUD)
    with pytest.raises(ChainError) as err:  # the same (receipt, kind) cannot slash twice
        slash_fraud(box.c.staking, fraud, w["validators"], w["facts"].domain, bps=1, snapshot=t, sender=box.deployer)
    assert err.value.error_name == "EvidenceAlreadyUsed"
    for cheat, account in w["cheaters"].items():
        conclusive = EXPECTED[cheat][1]
        assert box.c.staking.stake_of(account.address) == (PEER_STAKE // 2 if conclusive else PEER_STAKE), cheat
    for account in w["honest"]:
        assert box.c.staking.stake_of(account.address) == PEER_STAKE
    assert box.c.token.balance_of(box.deployer) - treasury_before == len(slashed) * (PEER_STAKE // 2)
