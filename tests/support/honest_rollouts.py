"""An honest peer's epoch without a trainer: seeded generation on the assigned prompts, recorded as the
epoch hook records what GRPO trained on (same sampler, same ids, sampling log-probs, decoded text).

    plan = RolloutPlan(run_id=spec.run_id, epoch=3, peer=acct.address, task_seed=spec.task.seed,
                       num_prompts=8, group_size=4, max_new_tokens=32, temperature=1.0)
    records = generate_rollouts(model, tokenizer, task, plan, reward_fn=task_reward(task))
"""

from __future__ import annotations

from dataclasses import dataclass

from coordination.attest.assignment import assigned_indices
from coordination.attest.logprobs import encode_prompt
from coordination.attest.records import RolloutRecord
from coordination.attest.rollouts import RewardFn, decode_completion
from coordination.attest.seeded_sampling import rollout_seed
from trainer.seeded_generation import seeded_generate


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
    top_k: int = 0
    top_p: float = 1.0

    def task_indices(self) -> list[int]:
        return assigned_indices(self.run_id, self.epoch, self.peer, self.num_prompts)


def generate_rollouts(model, tokenizer, task, plan: RolloutPlan, *, reward_fn: RewardFn) -> list[RolloutRecord]:
    """All of the epoch's records, slot-major, generation-minor, generated as one batch."""
    keys = [(slot, g, index) for slot, index in enumerate(plan.task_indices()) for g in range(plan.group_size)]
    samples = {index: task.sample(plan.task_seed, index) for _, _, index in keys}
    prompts = {index: task.prompt(s) for index, s in samples.items()}
    ids, logprobs = seeded_generate(
        model,
        [encode_prompt(tokenizer, prompts[index]) for _, _, index in keys],
        [rollout_seed(plan.run_id, plan.epoch, plan.peer, slot, g) for slot, g, _ in keys],
        max_new_tokens=plan.max_new_tokens,
        temperature=plan.temperature,
        eos_token_ids=[tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id or 0,
        top_k=plan.top_k,
        top_p=plan.top_p,
    )
    records = []
    for (slot, g, index), completion_ids, lps in zip(keys, ids, logprobs, strict=True):
        text = decode_completion(tokenizer, completion_ids)
        records.append(
            RolloutRecord.build(
                slot=slot,
                generation=g,
                task_seed=plan.task_seed,
                task_index=index,
                prompt=prompts[index],
                completion=text,
                completion_ids=completion_ids,
                reward=reward_fn(text, samples[index]),
                logprobs=lps,
            )  # fmt: skip
        )
    return records
