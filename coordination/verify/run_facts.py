"""The public facts of a run that every audit checks against, and how to build them from run.yaml.

facts = RunFacts.from_spec(spec, task=get_task(spec.task.name, **spec.task.params), domain=domain,
                           load_policy=lambda cid: (model, tokenizer))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from coordination.attest.rollouts import RewardFn, task_reward

PolicyLoader = Callable[[str], tuple]  # checkpoint CID -> (model, tokenizer)


@dataclass(frozen=True)
class RunFacts:
    """What a validator needs to recompute a peer's epoch: run identity, task, reward, sampling, checkpoints."""

    run_id: str
    run_id_bytes32: bytes
    domain: dict
    task: object
    task_seed: int
    reward_fn: RewardFn
    group_size: int
    max_new_tokens: int
    temperature: float
    load_policy: PolicyLoader
    checkpoint_of_epoch: Callable[[int], str | None] = lambda epoch: None  # None: accept any checkpoint CID
    logprob_tolerance_milli: int = 10  # |recomputed - claimed| per token, in milli-nats
    cdf_tolerance: float = 1e-4
    seeded_sampling: bool = True  # False for TRL-generated rollouts: skip the sampling and EOS checks

    @classmethod
    def from_spec(
        cls, spec, *, task, domain: dict, load_policy: PolicyLoader, reward_fn: RewardFn | None = None, **overrides
    ) -> RunFacts:
        """Facts of a `coordination.swarm.runspec.RunSpec`; the on-chain run key is `run_key(spec.run_id)`."""
        from coordination.chain.signing import run_key

        return cls(
            run_id=spec.run_id,
            run_id_bytes32=run_key(spec.run_id),
            domain=domain,
            task=task,
            task_seed=spec.task.seed,
            reward_fn=reward_fn or task_reward(task),
            group_size=spec.grpo.num_generations,
            max_new_tokens=spec.grpo.max_completion_length,
            temperature=spec.grpo.temperature,
            load_policy=load_policy,
            **overrides,
        )
