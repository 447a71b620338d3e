"""Rewards and text of rollouts, as peers and validators both compute them.

Peers do not generate here: they train with seeded sampling (trainer.seeded_grpo) and the epoch hook
files what GRPO trained on (coordination.attest.epoch_hook). The honest generator that tests and
benches use to stand in for a peer lives in tests/support/honest_rollouts.py.

    reward = task_reward(task)(completion_text, task.sample(seed, index))     # the GRPO scalar reward
    text = decode_completion(tokenizer, completion_ids)                        # as TRL decodes it
"""

from __future__ import annotations

from collections.abc import Callable

RewardFn = Callable[[str, object], float]  # (completion text, task Sample) -> reward


def correctness_reward(task) -> RewardFn:
    """1.0 when the task's strict verifier accepts the completion, else 0.0."""
    return lambda completion, sample: 1.0 if task.verify(completion, sample) else 0.0


def task_reward(task) -> RewardFn:
    """The scalar GRPO reward of the trainer (`trainer.rewards.weighted_reward`: correctness, format, steps)."""
    from trainer.rewards import weighted_reward

    return lambda completion, sample: weighted_reward(task, sample, completion)


def decode_completion(tokenizer, completion_ids) -> str:
    """The completion text of its ids, exactly as TRL's GRPOTrainer decodes it (special tokens skipped)."""
    return tokenizer.decode(list(completion_ids), skip_special_tokens=True)
