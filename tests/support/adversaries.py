"""Adversary models: the ways a peer can lie about an epoch, as an enum of faults (test and bench support).

Each cheat starts from what the peer actually has (honest records of the epoch, the previous epoch's, the
model) and produces what it publishes: the records it serves and the signed receipt.

    records, signed = publish_as(Cheat.NO_MODEL_FREELOADER, honest_records, ctx, epoch=3)
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from dataclasses import dataclass

from coordination.attest.logprobs import completion_logprobs, encode_prompt
from coordination.attest.receipts import NO_CONTRIBUTION, build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord
from coordination.attest.rollouts import decode_completion


class Cheat(enum.Enum):
    HONEST = "honest"
    FABRICATED_REWARDS = "fabricated_rewards"  # claims reward 1.0 on every rollout
    FABRICATED_COMPLETIONS = "fabricated_completions"  # writes the teacher's answer instead of sampling
    NO_MODEL_FREELOADER = "no_model_freeloader"  # junk completions, log-probs from one honest forward pass
    OVERLONG_COMPLETIONS = "overlong_completions"  # junk completions longer than max_completion_length
    DEGENERATE_ADAPTER = "degenerate_adapter"  # names its own degenerate checkpoint (uniform logits) and samples it
    CHEAPER_MODEL = "cheaper_model"  # seeded draws from another (cheaper) model, with that model's log-probs
    INFLATED_SAMPLES = "inflated_samples"  # signs twice the samples and tokens it did
    REPLAYED_EPOCH = "replayed_epoch"  # re-signs last epoch's records as this epoch's
    REPLAYED_RUN = "replayed_run"  # publishes a receipt it signed for another run
    WRONG_PROMPTS = "wrong_prompts"  # works on prompts of its choosing (indices 0, 1, ...)
    NOT_IN_ROUND = "not_in_round"  # honest records, but its gradient never entered the round
    OUT_OF_VOCAB = "out_of_vocab"  # a record with a token id outside the vocabulary (used to crash validate)


OTHER_RUN_KEY = b"\xee" * 32
DEGENERATE_CID = "bafkreidegenerateadapterofthepeer"


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
    contribution: bytes = NO_CONTRIBUTION  # digest of the gradient contribution it sent to the round
    run_id: str = ""  # for seeded draws of the model-swapping cheats
    temperature: float = 1.0
    other_model: object = None  # CHEAPER_MODEL: the model it really samples from


def _resign(ctx: PeerContext, records, epoch: int, *, contribution=None, checkpoint=None, **inflate):
    receipt = build_receipt(
        run_id_bytes32=ctx.run_key,
        epoch=epoch,
        peer=ctx.account.address,
        records=records,
        checkpoint_cid=checkpoint or ctx.checkpoint_cid,
        contribution=ctx.contribution if contribution is None else contribution,
    )
    receipt = dataclasses.replace(receipt, **{k: getattr(receipt, k) * v for k, v in inflate.items()})
    return sign_receipt(receipt, ctx.account.key, ctx.domain)


def _with_completion(ctx: PeerContext, record: RolloutRecord, ids, *, logprob_model=None, logprobs=None):
    """`record` with completion ids `ids`: consistent text, reward and (honest, unless given) log-probs."""
    sample = ctx.task.sample(record.task_seed, record.task_index)
    prompt = ctx.task.prompt(sample)
    text = decode_completion(ctx.tokenizer, ids)
    if logprobs is None:
        model = logprob_model or ctx.model
        prompt_ids = encode_prompt(ctx.tokenizer, prompt)
        logprobs = completion_logprobs(model, ctx.tokenizer, prompt_ids, ids, temperature=ctx.temperature)
    return RolloutRecord.build(
        slot=record.slot,
        generation=record.generation,
        task_seed=record.task_seed,
        task_index=record.task_index,
        prompt=prompt,
        completion=text,
        completion_ids=ids,
        reward=ctx.reward_fn(text, sample),
        logprobs=logprobs,
    )


def fabricate_completion(ctx: PeerContext, record: RolloutRecord) -> RolloutRecord:
    """The teacher's correct completion, with honest log-probs and reward: only sampling can expose it."""
    sample = ctx.task.sample(record.task_seed, record.task_index)
    ids = ctx.tokenizer.encode(ctx.task.teacher_trace(sample), add_special_tokens=False)[: ctx.max_new_tokens - 1]
    return _with_completion(ctx, record, ids + [ctx.tokenizer.eos_token_id])


def junk_ids(ctx: PeerContext, record: RolloutRecord, length: int) -> list[int]:
    """`length` pseudo-random non-special token ids, then EOS: what a peer that runs no model writes."""
    vocab = [t for t in range(len(ctx.tokenizer)) if t not in set(ctx.tokenizer.all_special_ids)]
    digest = hashlib.sha256(f"junk|{record.slot}|{record.generation}".encode()).digest() * (1 + length // 32)
    return [vocab[b % len(vocab)] for b in digest[: length - 1]] + [ctx.tokenizer.eos_token_id]


def sample_with(ctx: PeerContext, model, record: RolloutRecord, epoch: int, peer: str) -> list[int]:
    """The seeded draw of `record`'s rollout, but from `model` (not the canonical checkpoint)."""
    from coordination.attest.seeded_sampling import rollout_seed, sample_completion

    prompt = ctx.task.prompt(ctx.task.sample(record.task_seed, record.task_index))
    seed = rollout_seed(ctx.run_id, epoch, peer, record.slot, record.generation)
    return sample_completion(
        model, encode_prompt(ctx.tokenizer, prompt), seed=seed, max_new_tokens=ctx.max_new_tokens,
        temperature=ctx.temperature, eos_token_id=ctx.tokenizer.eos_token_id,
    )  # fmt: skip


class UniformLogits:
    """A 'model' whose logits are all equal (what a degenerate adapter zeroing the final norm computes)."""

    def __init__(self, model):
        self.inner, self.device, self.training = model, model.device, False

    def parameters(self):
        return self.inner.parameters()

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def __call__(self, input_ids, **kwargs):
        import torch

        out = self.inner(input_ids=input_ids, **kwargs)
        out.logits = torch.zeros_like(out.logits)
        return out


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
    peer, checkpoint, contribution = ctx.account.address, None, None
    if cheat is Cheat.FABRICATED_REWARDS:
        records = [dataclasses.replace(r, reward=1.0) for r in records]
    elif cheat is Cheat.FABRICATED_COMPLETIONS:
        records = [fabricate_completion(ctx, r) for r in records]
    elif cheat is Cheat.NO_MODEL_FREELOADER:
        records = [_with_completion(ctx, r, junk_ids(ctx, r, ctx.max_new_tokens // 2)) for r in records]
    elif cheat is Cheat.OVERLONG_COMPLETIONS:
        records = [_with_completion(ctx, r, junk_ids(ctx, r, 4 * ctx.max_new_tokens)) for r in records]
    elif cheat is Cheat.DEGENERATE_ADAPTER:
        uniform = UniformLogits(ctx.model)
        checkpoint = DEGENERATE_CID
        records = [
            _with_completion(ctx, r, ids, logprob_model=uniform)
            for r in records
            for ids in [sample_with(ctx, uniform, r, epoch, peer)]
        ]
    elif cheat is Cheat.CHEAPER_MODEL:
        if ctx.other_model is None:
            raise ValueError("CHEAPER_MODEL needs ctx.other_model")
        records = [
            _with_completion(ctx, r, ids, logprob_model=ctx.other_model)
            for r in records
            for ids in [sample_with(ctx, ctx.other_model, r, epoch, peer)]
        ]
    elif cheat is Cheat.REPLAYED_EPOCH:
        if previous is None:
            raise ValueError("REPLAYED_EPOCH needs the previous epoch's records (previous=...)")
        records = previous
    elif cheat is Cheat.WRONG_PROMPTS:
        records = [rewrite_prompt(ctx, r, r.slot) for r in records]
    elif cheat is Cheat.REPLAYED_RUN:
        ctx = dataclasses.replace(ctx, run_key=OTHER_RUN_KEY)
    elif cheat is Cheat.NOT_IN_ROUND:
        contribution = hashlib.sha256(b"a contribution nobody averaged").digest()
    elif cheat is Cheat.OUT_OF_VOCAB:
        bad = list(records[0].completion_ids)
        bad[0] = len(ctx.tokenizer) + 7
        records = [dataclasses.replace(records[0], completion_ids=tuple(bad))] + list(records[1:])
    inflate = {"samples": 2, "completion_tokens": 2} if cheat is Cheat.INFLATED_SAMPLES else {}
    return records, _resign(ctx, records, epoch, contribution=contribution, checkpoint=checkpoint, **inflate)
