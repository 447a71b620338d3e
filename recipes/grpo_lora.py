"""GRPO + LoRA on a reasoning task with verifiable rewards (TRL `GRPOTrainer` + PEFT).

Launch (plain Python or accelerate; on a CPU-only box `--multi_gpu --num_processes 2` starts two CPU
processes over gloo, data parallel):

    python recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml
    accelerate launch recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml
    accelerate launch --multi_gpu --num_processes 2 recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml
    python recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml --max_steps 5 --output_dir /tmp/g

1. Base model: `model_name_or_path`; with `warm_start_steps > 0` it is first SFT-warm-started
   (cached in `warm_start_dir`, reused while its settings match).
2. Prompts `(train_seed, i)` of the task's training split; rewards correctness + format + step
   credit (`rewards`, weighted by `reward_weights`); LoRA from TRL's ModelConfig (`use_peft`, `lora_*`).
3. Rank 0 saves the adapter (`save_pretrained`) and a held-out eval before/after (JSON + PNG).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig, ModelConfig


@dataclass
class GRPORecipeArguments:
    """The task, its data, the warm start and the eval (GRPOConfig and ModelConfig set the rest)."""

    task: str = field(default="arithmetic", metadata={"help": "Task name: arithmetic, countdown, gsm8k."})
    task_params: str = field(default="", metadata={"help": "Task parameters as key=value,key=value (digits=2)."})
    train_seed: int = field(default=0, metadata={"help": "Seed of the training prompts (train split)."})
    n_prompts: int = field(default=4096, metadata={"help": "Distinct training prompts (cycled by epochs)."})
    rewards: str = field(default="correctness,format,steps", metadata={"help": "Reward components, in order."})
    warm_start_steps: int = field(default=0, metadata={"help": "SFT steps before GRPO (0: use the model as is)."})
    warm_start_lr: float = field(default=3e-3, metadata={"help": "SFT learning rate of the warm start."})
    warm_start_flaw_rate: float = field(
        default=0.0, metadata={"help": "Fraction of flawed teacher traces in the warm start (see trainer.sft)."}
    )
    warm_start_dir: str = field(default="outputs/warm_start", metadata={"help": "Cache dir of the warm start."})
    eval_n: int = field(default=200, metadata={"help": "Held-out samples evaluated before and after (0: skip)."})
    eval_seed: int = field(default=0, metadata={"help": "Seed of the held-out eval samples."})
    torch_threads: int = field(default=0, metadata={"help": "Torch CPU threads (0: torch default; 1 on busy boxes)."})

    def __post_init__(self):
        if self.warm_start_steps > 0 and not self.warm_start_dir:
            raise ValueError(
                f"warm_start_steps={self.warm_start_steps} needs a warm_start_dir: set warm_start_dir "
                "or warm_start_steps=0"
            )
        if self.n_prompts < 1 or self.eval_n < 0:
            raise ValueError(f"n_prompts={self.n_prompts} and eval_n={self.eval_n}: need n_prompts >= 1, eval_n >= 0")

    @property
    def reward_names(self) -> list[str]:
        return [name.strip() for name in self.rewards.split(",") if name.strip()]


def check_args(script: GRPORecipeArguments, args: GRPOConfig) -> None:
    """Cross-config checks (fields of different dataclasses)."""
    from trainer.errors import TrainerConfigError

    weights = args.reward_weights
    if weights is not None and len(weights) != len(script.reward_names):
        raise TrainerConfigError(
            f"rewards={script.rewards!r} has {len(script.reward_names)} entries but reward_weights="
            f"{weights} has {len(weights)}: give one weight per reward"
        )


def base_model_path(script: GRPORecipeArguments, model_args: ModelConfig, seed: int) -> str:
    """The model GRPO starts from: the warm start (trained or cached) or `model_name_or_path`."""
    from trainer.sft import ensure_warm_start
    from trainer.tasks import parse_task_params

    if script.warm_start_steps <= 0:
        return model_args.model_name_or_path
    path = ensure_warm_start(
        script.task,
        script.warm_start_dir,
        task_params=parse_task_params(script.task_params),
        model=model_args.model_name_or_path,
        max_steps=script.warm_start_steps,
        learning_rate=script.warm_start_lr,
        teacher_flaw_rate=script.warm_start_flaw_rate,
        seed=seed,
    )
    return str(path)


def main(script: GRPORecipeArguments, args: GRPOConfig, model_args: ModelConfig) -> None:
    from trl import get_peft_config

    from trainer.eval import evaluate, write_report
    from trainer.grpo import build_grpo_trainer, prompt_dataset, reward_functions
    from trainer.models import load_model_and_tokenizer, set_torch_threads
    from trainer.reporting import is_main_process, log_resolved_config, prepare_reporting
    from trainer.rewards import default_weights
    from trainer.tasks import get_task, parse_task_params

    check_args(script, args)
    prepare_reporting(args.report_to)
    set_torch_threads(script.torch_threads)
    log_resolved_config(args.output_dir, script=script, grpo=args, model=model_args)
    task = get_task(script.task, **parse_task_params(script.task_params))
    model, tokenizer = load_model_and_tokenizer(base_model_path(script, model_args, args.seed))
    if args.reward_weights is None:
        args.reward_weights = default_weights(script.reward_names)
    trainer = build_grpo_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        dataset=prompt_dataset(task, script.train_seed, range(script.n_prompts)),
        grpo_config=args,
        lora_config=get_peft_config(model_args),
        reward_funcs=reward_functions(task, script.reward_names),
    )
    before = (
        evaluate(trainer.model, tokenizer, task, n=script.eval_n, seed=script.eval_seed) if script.eval_n else None
    )
    trainer.train()
    trainer.save_model(args.output_dir)
    if is_main_process() and script.eval_n:
        after = evaluate(trainer.model, tokenizer, task, n=script.eval_n, seed=script.eval_seed)
        write_report({"before GRPO": before, "after GRPO": after}, f"{args.output_dir}/eval")
        print(f"held-out pass@1: before {before['accuracy']:.3f} -> after {after['accuracy']:.3f}")


if __name__ == "__main__":
    from recipes.recipe_entry import run_recipe

    run_recipe(main, GRPORecipeArguments, GRPOConfig, ModelConfig)
