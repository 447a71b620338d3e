"""GRPO + LoRA through TRL's `GRPOTrainer` and PEFT (wrapped, not forked).

Public API (used by the swarm trainer, the validators and the recipes):

    from trainer.grpo import build_grpo_trainer, prompt_dataset, reward_functions
    from trainer.config import LoraSection
    dataset = prompt_dataset(task, seed=0, indices=range(4096), tokenizer=tok)  # prompt, answer, problem, seed, index
    trainer = build_grpo_trainer(model=model, tokenizer=tok, task=task, dataset=dataset,
                                 grpo_config=GRPOConfig(...), lora_config=LoraSection().peft_config())
    trainer.train(); trainer.save_model("outputs/adapter")       # adapter_model.safetensors + adapter_config.json

- `trainer_cls` lets a caller plug in a GRPOTrainer subclass (e.g. one that averages LoRA
  gradients over hivemind); every argument reaches it unchanged.
- Rewards default to `trainer.rewards.reward_functions(task)` (correctness, format, steps) with
  `DEFAULT_WEIGHTS`, unless `grpo_config.reward_weights` is already set.
- Recompute a reward: `trainer.rewards.score(task, Sample.from_json(row["problem"]), completion)`.
- Reload an adapter: `trainer.models.load_base_with_adapter(base_model_path, adapter_dir)`.
Recipe: `accelerate launch recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from trl import GRPOConfig, GRPOTrainer

from trainer.rewards import REWARD_NAMES, default_weights
from trainer.rewards import reward_functions as _reward_functions
from trainer.tasks import Task

PROMPT_COLUMNS = ("prompt", "answer", "problem", "seed", "index")  # the keys of `trainer.prompts.prompt_row`

__all__ = [
    "GRPOConfig",
    "GRPOTrainer",
    "build_grpo_trainer",
    "prompt_dataset",
    "reward_functions",
]


def prompt_dataset(task: Task, seed: int, indices: Iterable[int], split: str = "train", tokenizer=None):
    """Prompts of `task` at `(seed, index)` per index: columns prompt, answer, problem (Sample JSON), seed, index.

    Each row is `trainer.prompts.prompt_row`: with an instruct `tokenizer` the prompt is chat-templated.
    """
    from datasets import Dataset

    from trainer.prompts import prompt_row

    rows = [prompt_row(task, task.sample(seed, int(i), split=split), tokenizer) for i in indices]
    return Dataset.from_dict({column: [row[column] for row in rows] for column in PROMPT_COLUMNS})


def reward_functions(task: Task, names=REWARD_NAMES):
    """TRL reward functions of `task` (see trainer.rewards)."""
    return _reward_functions(task, names)


def build_grpo_trainer(
    *,
    model,
    tokenizer,
    task: Task,
    dataset,
    grpo_config: GRPOConfig,
    lora_config=None,
    trainer_cls: type[GRPOTrainer] = GRPOTrainer,
    callbacks=None,
    reward_funcs=None,
):
    """A `trainer_cls` (default TRL's GRPOTrainer) for `task` over `dataset`, with LoRA when `lora_config` is set."""
    if reward_funcs is None:
        reward_funcs = reward_functions(task)
        if grpo_config.reward_weights is None:
            grpo_config.reward_weights = default_weights()
    if isinstance(model, str | Path):
        from trainer.models import load_model_and_tokenizer

        model, _ = load_model_and_tokenizer(model)
    return trainer_cls(
        model=model,
        reward_funcs=reward_funcs,
        args=grpo_config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config,
        callbacks=callbacks,
    )
