"""GRPO + LoRA on a reasoning task with verifiable rewards (TRL `GRPOTrainer` + PEFT).

Launch (plain Python or accelerate; on a CPU-only box `--multi_gpu --num_processes 2` starts two CPU
processes over gloo, data parallel):

    python recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml
    accelerate launch recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml
    accelerate launch --multi_gpu --num_processes 2 recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml
    python recipes/grpo_lora.py --config recipes/configs/grpo_arith_tiny.yaml --max_steps 5 --output_dir /tmp/g

    accelerate launch recipes/grpo_lora.py --config recipes/configs/grpo_smollm2.yaml --max_steps 2

1. Base model: `model_name_or_path` (a hub id at `model_revision`, a path, `tiny`, or the built-in
   `smollm2-135m-instruct`), loaded in `dtype` (auto: bf16 on CUDA, fp32 on CPU) with
   `attn_implementation`; `base_cid` pins the base directory's content address. With
   `warm_start_steps > 0` it is first SFT-warm-started (full FT for the tiny model, LoRA at
   `warm_start_lr` for real models; cached in `warm_start_dir`, reused while its settings match).
2. Prompts `(train_seed, i)` of the task's training split, chat-templated for instruct models
   (`trainer.prompts.render_prompt`); rewards correctness + format + step
   credit (`rewards`, weighted by `reward_weights`); LoRA from TRL's ModelConfig (`use_peft`, `lora_*`).
3. Rank 0 saves the adapter (`save_pretrained`) and a held-out eval before/after (JSON + PNG).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig, ModelConfig

from trainer.config import WarmStartSection, section_field


@dataclass
class GRPORecipeArguments:
    """The task, its data, the warm start and the eval (GRPOConfig and ModelConfig set the rest)."""

    task: str = field(default="arithmetic", metadata={"help": "Task name: arithmetic, countdown, gsm8k, gym."})
    task_params: str = field(
        default="",
        metadata={
            "help": "Task parameters as key=value,... (digits=2; gym: dataset=chain_sum,config=min_terms=2;...)."
        },
    )
    base_cid: str = field(default="", metadata={"help": "Pinned CID of the base model directory ('' = unpinned)."})
    train_seed: int = field(default=0, metadata={"help": "Seed of the training prompts (train split)."})
    n_prompts: int = field(default=4096, metadata={"help": "Distinct training prompts (cycled by epochs)."})
    rewards: str = field(default="correctness,format,steps", metadata={"help": "Reward components, in order."})
    warm_start_steps: int = field(default=0, metadata={"help": "SFT steps before GRPO (0: use the model as is)."})
    warm_start_lr: float | None = section_field(WarmStartSection, "learning_rate")
    warm_start_batch_size: int = section_field(WarmStartSection, "batch_size")
    warm_start_flaw_rate: float = section_field(WarmStartSection, "teacher_flaw_rate")
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
    from trainer.base_models import is_builtin_base
    from trainer.errors import TrainerConfigError

    if model_args.model_revision not in (None, "main") and not is_builtin_base(model_args.model_name_or_path):
        raise TrainerConfigError(
            f"warm_start_steps={script.warm_start_steps} with model_revision={model_args.model_revision}: "
            "the warm start loads the default revision; download that revision to a directory and pass its path"
        )
    path = ensure_warm_start(
        script.task,
        script.warm_start_dir,
        task_params=parse_task_params(script.task_params),
        model=model_args.model_name_or_path,
        max_steps=script.warm_start_steps,
        learning_rate=script.warm_start_lr,
        batch_size=script.warm_start_batch_size,
        teacher_flaw_rate=script.warm_start_flaw_rate,
        seed=seed,
    )
    return str(path)


def check_base(script: GRPORecipeArguments, model_args: ModelConfig) -> None:
    """Refuse a base whose directory CID or revision differs from the pins (one-line error)."""
    from trainer.base_models import verify_base_model

    revision = model_args.model_revision if model_args.model_revision not in (None, "main") else None
    if script.base_cid or revision:
        verify_base_model(model_args.model_name_or_path, expected_cid=script.base_cid or None, revision=revision)


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
    check_base(script, model_args)
    model, tokenizer = load_model_and_tokenizer(
        base_model_path(script, model_args, args.seed),
        dtype=model_args.dtype,
        revision=model_args.model_revision,
        attn_implementation=model_args.attn_implementation,
    )
    if args.reward_weights is None:
        args.reward_weights = default_weights(script.reward_names)
    trainer = build_grpo_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        dataset=prompt_dataset(task, script.train_seed, range(script.n_prompts), tokenizer=tokenizer),
        grpo_config=args,
        lora_config=get_peft_config(model_args),
        reward_funcs=reward_functions(task, script.reward_names),
    )
    budget = dict(n=script.eval_n, seed=script.eval_seed, max_new_tokens=args.max_completion_length)
    before = evaluate(trainer.model, tokenizer, task, **budget) if script.eval_n else None
    trainer.train()
    trainer.save_model(args.output_dir)
    if is_main_process() and script.eval_n:
        after = evaluate(trainer.model, tokenizer, task, **budget)
        write_report({"before GRPO": before, "after GRPO": after}, f"{args.output_dir}/eval")
        print(f"held-out pass@1: before {before['accuracy']:.3f} -> after {after['accuracy']:.3f}")


if __name__ == "__main__":
    from recipes.recipe_entry import run_recipe

    run_recipe(main, GRPORecipeArguments, GRPOConfig, ModelConfig)
