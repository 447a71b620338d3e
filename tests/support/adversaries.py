"""Adversary models: the ways a peer can lie about an epoch, as an enum of faults.

Used by the end-to-end tests and by `bench/verify_cost.py` to measure detection. Each cheat
starts from what the peer actually has (honest records, or none) and produces what it
publishes: the records it serves and the signed receipt.

    records, signed = publish_as(Cheat.FABRICATED_REWARDS, honest_records, ctx)
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from coordination.attest.logprobs import completion_logprobs, encode_prompt
from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord


class Cheat(enum.Enum):
    HONEST = "honest"
    FABRICATED_REWARDS = "fabricated_rewards"  # claims reward 1.0 on every rollout
    FABRICATED_COMPLETIONS = "fabricated_completions"  # writes the teacher's answer instead of sampling
    INFLATED_SAMPLES = "inflated_samples"  # signs twice the samples and tokens it did
    REPLAYED_EPOCH = "replayed_epoch"  # re-signs last epoch's records as this epoch's
    WRONG_PROMPTS = "wrong_prompts"  # works on prompts of its choosing (indices 0, 1, ...)
    REPLAYED_RUN = "replayed_run"  # publishes a receipt it signed for another run


OTHER_RUN_KEY = b"\xee" * 32


@dataclass(frozen=True)
class PeerContext:
    """What a (possibly cheating) peer knows: its key, the run, the model, the task and reward function."""

    account: object
    run_key: bytes
    domain: dict
    checkpoint_cid: str
    model: object
    tokenizer: object
    task: object
    reward_fn: object
    max_new_tokens: int


def _resign(ctx: PeerContext, records, epoch: int, **inflate):
    receipt = build_receipt(
        run_id_bytes32=ctx.run_key,
        epoch=epoch,
        peer=ctx.account.address,
        records=records,
        checkpoint_cid=ctx.checkpoint_cid,
    )
    receipt = dataclasses.replace(receipt, **{k: getattr(receipt, k) * v for k, v in inflate.items()})
    return sign_receipt(receipt, ctx.account.key, ctx.domain)


def fabricate_completion(ctx: PeerContext, record: RolloutRecord) -> RolloutRecord:
    """The teacher's correct completion, with honest log-probs and reward: only sampling can expose it."""
    sample = ctx.task.sample(record.task_seed, record.task_index)
    prompt = ctx.task.prompt(sample)
    ids = ctx.tokenizer.encode(ctx.task.teacher_trace(sample), add_special_tokens=False)[: ctx.max_new_tokens - 1]
    ids = ids + [ctx.tokenizer.eos_token_id]
    text = ctx.tokenizer.decode(ids, skip_special_tokens=True)
    return RolloutRecord.build(
        slot=record.slot,
        generation=record.generation,
        task_seed=record.task_seed,
        task_index=record.task_index,
        prompt=prompt,
        completion=text,
        completion_ids=ids,
        reward=ctx.reward_fn(text, sample),
        logprobs=completion_logprobs(ctx.model, ctx.tokenizer, encode_prompt(ctx.tokenizer, prompt), ids),
    )


def rewrite_prompt(ctx: PeerContext, record: RolloutRecord, index: int) -> RolloutRecord:
    """The same completion, filed under a prompt the peer chose (consistent digest and reward)."""
    sample = ctx.task.sample(record.task_seed, index)
    return dataclasses.replace(
        RolloutRecord.build(
            slot=record.slot,
            generation=record.generation,
            task_seed=record.task_seed,
            task_index=index,
            prompt=ctx.task.prompt(sample),
            completion=record.completion,
            completion_ids=record.completion_ids,
            reward=ctx.reward_fn(record.completion, sample),
            logprobs=[0.0] * record.completion_tokens,
        ),
        logprobs_milli=record.logprobs_milli,
    )


def publish_as(
    cheat: Cheat,
    records: list[RolloutRecord],
    ctx: PeerContext,
    *,
    epoch: int,
    previous: list[RolloutRecord] | None = None,
):
    """(records served, signed receipt) of a peer playing `cheat` in `epoch` with honest `records`."""
    if cheat is Cheat.FABRICATED_REWARDS:
        records = [dataclasses.replace(r, reward=1.0) for r in records]
    elif cheat is Cheat.FABRICATED_COMPLETIONS:
        records = [fabricate_completion(ctx, r) for r in records]
    elif cheat is Cheat.REPLAYED_EPOCH:
        if previous is None:
            raise ValueError("REPLAYED_EPOCH needs the previous epoch's records (previous=...)")
        records = previous
    elif cheat is Cheat.WRONG_PROMPTS:
        records = [rewrite_prompt(ctx, r, r.slot) for r in records]
    elif cheat is Cheat.REPLAYED_RUN:
        ctx = dataclasses.replace(ctx, run_key=OTHER_RUN_KEY)
    inflate = {"samples": 2, "completion_tokens": 2} if cheat is Cheat.INFLATED_SAMPLES else {}
    return records, _resign(ctx, records, epoch, **inflate)
