r"""SFT warm start: teach the tiny model the `<t>..</t><a>..</a>` format on synthetic traces.

Launch (plain Python or accelerate; on a CPU-only box `--multi_gpu --num_processes 2` starts two CPU
processes over gloo, data parallel):

    python recipes/sft_warmstart.py --config recipes/configs/sft_arith_tiny.yaml
    accelerate launch recipes/sft_warmstart.py --config recipes/configs/sft_arith_tiny.yaml
    accelerate launch --multi_gpu --num_processes 2 \
        recipes/sft_warmstart.py --config recipes/configs/sft_arith_tiny.yaml
    python recipes/sft_warmstart.py --config recipes/configs/sft_arith_tiny.yaml --max_steps 20 --output_dir /tmp/w

1. Training-split samples `(trace_seed, i)` of the task, written by the programmatic teacher.
2. TRL `SFTTrainer` (prompt-completion data: loss on completion tokens, EOS appended); prompts are
   chat-templated for instruct models. The tiny model is fully fine-tuned; any other model gets LoRA
   (`lora_r`, merged before saving; use a LoRA learning rate, ~5e-4), on CUDA when there is one.
3. Rank 0 saves the model + tokenizer to `output_dir` and writes a held-out eval (JSON + PNG).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig

from trainer.config import TEACHER_DATA_SEED, WarmStartSection, section_field


@dataclass
class WarmStartArguments:
    """What to warm-start on (the `SFTConfig` fields set how)."""

    model_name_or_path: str = field(default="tiny", metadata={"help": "Base model dir, hub id, or `tiny`."})
    task: str = field(default="arithmetic", metadata={"help": "Task name: arithmetic, countdown, gsm8k."})
    task_params: str = field(default="", metadata={"help": "Task parameters as key=value,key=value (digits=2)."})
    n_samples: int = section_field(WarmStartSection, "n_samples")
    trace_seed: int = field(default=TEACHER_DATA_SEED, metadata={"help": "Seed of the teacher traces (train split)."})
    teacher_flaw_rate: float = section_field(WarmStartSection, "teacher_flaw_rate")
    eval_n: int = field(default=200, metadata={"help": "Held-out samples to evaluate after training (0: skip)."})
    eval_seed: int = field(default=0, metadata={"help": "Seed of the held-out eval samples."})
    torch_threads: int = field(default=0, metadata={"help": "Torch CPU threads (0: torch default; 1 on busy boxes)."})
    lora_r: int = section_field(
        WarmStartSection,
        "lora_r",
        help="LoRA rank for real models (0: full FT); the tiny model is always fully trained.",
    )

    def __post_init__(self):
        if self.n_samples < 1 or self.eval_n < 0:
            raise ValueError(f"n_samples={self.n_samples} and eval_n={self.eval_n}: need n_samples >= 1, eval_n >= 0")


def main(script: WarmStartArguments, args: SFTConfig) -> None:
    from trainer.eval import evaluate, write_report
    from trainer.models import is_tiny_model, load_model_and_tokenizer, set_torch_threads
    from trainer.reporting import is_main_process, log_resolved_config, prepare_reporting
    from trainer.sft import sft_lora_config, train_sft
    from trainer.tasks import get_task, parse_task_params

    prepare_reporting(args.report_to)
    set_torch_threads(script.torch_threads)
    log_resolved_config(args.output_dir, script=script, sft=args)
    task = get_task(script.task, **parse_task_params(script.task_params))
    model, tokenizer = load_model_and_tokenizer(script.model_name_or_path)
    trainer = train_sft(
        model,
        tokenizer,
        task,
        args,
        data_seed=script.trace_seed,
        n_samples=script.n_samples,
        teacher_flaw_rate=script.teacher_flaw_rate,
        peft_config=None if is_tiny_model(tokenizer) or script.lora_r <= 0 else sft_lora_config(script.lora_r),
    )
    if is_main_process():
        trained = trainer.model.merge_and_unload() if hasattr(trainer.model, "merge_and_unload") else trainer.model
        trained.save_pretrained(args.output_dir)
        tokenizer.save_pretrained(args.output_dir)
        if script.eval_n:
            result = evaluate(trainer.model, tokenizer, task, n=script.eval_n, seed=script.eval_seed)
            write_report({"warm start": result}, f"{args.output_dir}/eval")
            print(f"warm start pass@1 {result['accuracy']:.3f} on {script.eval_n} held-out samples")


if __name__ == "__main__":
    from recipes.recipe_entry import run_recipe

    run_recipe(main, WarmStartArguments, SFTConfig)
