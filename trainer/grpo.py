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
- Reload an adapter: `PeftModel.from_pretrained(base_model, adapter_dir)` (see `load_adapter`).
Recipe: `accelerate launch recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from trl import GRPOConfig, GRPOTrainer

from trainer.rewards import REWARD_NAMES, default_weights
from trainer.rewards import reward_functions as _reward_functions
from trainer.tasks import Task

__all__ = [
    "GRPOConfig",
    "GRPOTrainer",
    "build_grpo_trainer",
    "prompt_dataset",
    "reward_functions",
    "load_adapter",
]


def prompt_dataset(task: Task, seed: int, indices: Iterable[int], split: str = "train", tokenizer=None):
    """Prompts of `task` at `(seed, index)` per index: columns prompt, answer, problem (Sample JSON), seed, index.

    With an instruct `tokenizer` the prompt is chat-templated (`trainer.prompts.render_prompt`).
    """
    from datasets import Dataset

    from trainer.prompts import render_prompt

    samples = [task.sample(seed, int(i), split=split) for i in indices]
    return Dataset.from_dict(
        {
            "prompt": [render_prompt(task, s, tokenizer) for s in samples],
            "answer": [s.answer for s in samples],
            "problem": [s.to_json() for s in samples],
            "seed": [s.seed for s in samples],
            "index": [s.index for s in samples],
        }
    )


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


def load_adapter(base_model_path: str | Path, adapter_dir: str | Path):
    """(PeftModel with the adapter at `adapter_dir` on the base, tokenizer) in eval mode."""
    from peft import PeftModel

    from trainer.models import load_model_and_tokenizer

    base, tokenizer = load_model_and_tokenizer(base_model_path)
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval(), tokenizer
