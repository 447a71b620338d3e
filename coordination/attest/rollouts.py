"""Peer side of attestation: generate an epoch's rollouts on the assigned prompts and record them.

For each assigned prompt slot (indices from `assigned_indices`) and each generation of its
GRPO group, the completion is drawn with verifiable seeded sampling, scored with the reward
function, and its log-probs are recomputed with `completion_logprobs` (the function the
validators use), then stored as a `RolloutRecord`.

    plan = RolloutPlan(run_id=spec.run_id, epoch=3, peer=acct.address, task_seed=spec.task.seed,
                       num_prompts=8, group_size=4, max_new_tokens=32, temperature=1.0)
    records = generate_rollouts(model, tokenizer, task, plan, reward_fn=correctness_reward(task))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coordination.attest.assignment import assigned_indices
from coordination.attest.logprobs import completion_logprobs, encode_prompt
from coordination.attest.records import RolloutRecord
from coordination.attest.seeded_sampling import rollout_seed, sample_completion

RewardFn = Callable[[str, object], float]  # (completion text, task Sample) -> reward


@dataclass(frozen=True)
class RolloutPlan:
    """What one peer must generate in one epoch (all of it public, so validators can recompute it)."""

    run_id: str
    epoch: int
    peer: str
    task_seed: int
    num_prompts: int
    group_size: int
    max_new_tokens: int
    temperature: float

    def task_indices(self) -> list[int]:
        return assigned_indices(self.run_id, self.epoch, self.peer, self.num_prompts)


def correctness_reward(task) -> RewardFn:
    """1.0 when the task's strict verifier accepts the completion, else 0.0."""
    return lambda completion, sample: 1.0 if task.verify(completion, sample) else 0.0


def task_reward(task) -> RewardFn:
    """The scalar GRPO reward of the trainer (`trainer.rewards.weighted_reward`: correctness, format, steps)."""
    from trainer.rewards import weighted_reward

    return lambda completion, sample: weighted_reward(task, sample, completion)


def decode_completion(tokenizer, completion_ids) -> str:
    return tokenizer.decode(list(completion_ids), skip_special_tokens=True)


def rollout_record(
    model, tokenizer, task, plan: RolloutPlan, slot: int, generation: int, task_index: int, reward_fn: RewardFn
) -> RolloutRecord:
    """Sample, score and record one completion of the prompt at `slot`."""
    sample = task.sample(plan.task_seed, task_index)
    prompt = task.prompt(sample)
    prompt_ids = encode_prompt(tokenizer, prompt)
    seed = rollout_seed(plan.run_id, plan.epoch, plan.peer, slot, generation)
    ids = sample_completion(
        model,
        prompt_ids,
        seed=seed,
        max_new_tokens=plan.max_new_tokens,
        temperature=plan.temperature,
        eos_token_id=tokenizer.eos_token_id,
    )
    text = decode_completion(tokenizer, ids)
    return RolloutRecord.build(
        slot=slot,
        generation=generation,
        task_seed=plan.task_seed,
        task_index=task_index,
        prompt=prompt,
        completion=text,
        completion_ids=ids,
        reward=reward_fn(text, sample),
        logprobs=completion_logprobs(model, tokenizer, prompt_ids, ids),
    )


def generate_rollouts(model, tokenizer, task, plan: RolloutPlan, *, reward_fn: RewardFn) -> list[RolloutRecord]:
    """All of the epoch's records, slot-major, generation-minor."""
    return [
        rollout_record(model, tokenizer, task, plan, slot, g, index, reward_fn)
        for slot, index in enumerate(plan.task_indices())
        for g in range(plan.group_size)
    ]
