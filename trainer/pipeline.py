"""The single-peer pipeline: SFT warm start -> eval -> GRPO + LoRA -> eval, with a summary and a plot.

    python -m recipes.single_peer --config recipes/configs/single_peer_arith_tiny.yaml --seeds 0 1 2
    hivetune train --config recipes/configs/single_peer_arith_tiny.yaml --seed 1

Per seed s: the tiny model is initialised from s, warm-started on teacher traces (cached under
`output_dir/seed{s}/warm_start`), evaluated greedily on the fixed held-out set (`eval_seed`), trained
with GRPO + LoRA on training prompts `(s, i)`, and evaluated again. Each seed writes
`summary.json`; several seeds also write `seeds.json` (mean and spread of before/after/gain) and
`seeds.png`. Building blocks: `trainer.sft.ensure_warm_start`, `trainer.grpo.build_grpo_trainer`,
`trainer.eval.evaluate`. The entry script is `recipes/single_peer.py`; `hivetune train` calls
`run_single_peer` here (the CLI never imports recipes/).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainer.config import STRICT, TEACHER_DATA_SEED, GrpoSection, LoraSection, WarmStartSection, load_config
from trainer.errors import TrainerConfigError


@dataclass(frozen=True)
class PipelineGrpo(GrpoSection):
    """The single peer's GRPO: the shared section (trainer.config.GrpoSection) plus TRL's step schedule."""

    max_steps: int = field(default=150, metadata={"help": "GRPO steps (each: batch / num_generations prompts)."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name, per step."})
    logging_steps: int = field(default=10, metadata={"help": "Steps between logged metrics."})


@dataclass(frozen=True)
class PipelineConfig:
    """One single-peer run: the task, the model, evals, and its warm-start, GRPO and LoRA sections."""

    __pydantic_config__ = STRICT

    task: str = field(default="arithmetic", metadata={"help": "Task name (trainer.tasks.get_task)."})
    task_params: dict = field(default_factory=dict, metadata={"help": "Task keyword arguments, e.g. {digits: 2}."})
    model: str = field(default="tiny", metadata={"help": "'tiny' (initialised from the seed), a built-in or HF id."})
    seed: int = field(default=0, metadata={"help": "Seed of the model init, training prompts and sampling."})
    output_dir: str = field(default="outputs/single_peer", metadata={"help": "Where seed{s}/ results go."})
    eval_n: int = field(default=300, metadata={"help": "Held-out samples per eval."})
    eval_seed: int = field(default=12_345, metadata={"help": "Seed of the fixed held-out set."})
    n_prompts: int = field(default=4096, metadata={"help": "Training prompts (task seed, index) drawn from."})
    warm_start: WarmStartSection = field(
        default_factory=WarmStartSection, metadata={"help": "SFT on teacher traces first (trainer.sft)."}
    )
    grpo: PipelineGrpo = field(default_factory=PipelineGrpo, metadata={"help": "GRPO settings (GRPOConfig names)."})
    lora: LoraSection = field(default_factory=LoraSection, metadata={"help": "The LoRA adapter."})
    report_to: str = field(default="none", metadata={"help": "none | wandb (offline unless logged in)."})
    torch_threads: int = field(
        default=1, metadata={"help": "Intra-op threads (0: torch's default; 1 is fastest on a shared 2-core box)."}
    )

    def __post_init__(self):
        if self.eval_n < 1:
            raise TrainerConfigError(f"eval_n={self.eval_n}: the pipeline compares evals, set eval_n >= 1")
        steps, gens = self.grpo.per_device_train_batch_size, self.grpo.num_generations
        if steps % gens:
            raise TrainerConfigError(
                f"grpo.per_device_train_batch_size={steps} is not a multiple of "
                f"grpo.num_generations={gens}: make it one (e.g. {gens * max(1, steps // gens)})"
            )


def load_pipeline_config(path: str | Path, *, seed: int | None = None, output_dir: str | Path | None = None):
    """Read a pipeline YAML (trainer.config.load_config): unknown or mistyped keys are a one-line error."""
    return load_config(PipelineConfig, path, what="pipeline config", seed=seed,
                       output_dir=None if output_dir is None else str(output_dir))  # fmt: skip


def grpo_config(cfg: PipelineConfig, out_dir: Path, max_completion_length: int):
    import torch
    from trl import GRPOConfig

    fields = dict(
        output_dir=str(out_dir),
        seed=cfg.seed,
        max_completion_length=max_completion_length,
        report_to=cfg.report_to,
        use_cpu=not torch.cuda.is_available(),
        save_strategy="no",
        bf16=False,  # TRL defaults to bf16 autocast even on CPU: slower and less exact for a tiny model
        max_steps=cfg.grpo.max_steps,
        lr_scheduler_type=cfg.grpo.lr_scheduler_type,
        logging_steps=cfg.grpo.logging_steps,
        **cfg.grpo.trl_kwargs(),
    )
    return GRPOConfig(**fields)


def run_single_peer(cfg: PipelineConfig) -> dict:
    """Run the pipeline for `cfg.seed`; returns (and writes) the summary dict."""
    from trainer.eval import evaluate
    from trainer.grpo import build_grpo_trainer, prompt_dataset
    from trainer.models import ensure_tiny_model, load_model_and_tokenizer, set_torch_threads
    from trainer.prompts import completion_token_budget
    from trainer.reporting import log_resolved_config, prepare_reporting
    from trainer.sft import ensure_warm_start
    from trainer.tasks import get_task

    out = Path(cfg.output_dir) / f"seed{cfg.seed}"
    prepare_reporting(cfg.report_to)
    set_torch_threads(cfg.torch_threads)
    log_resolved_config(out, pipeline=cfg)
    task = get_task(cfg.task, **cfg.task_params)
    clock = {"start": time.perf_counter()}
    base = str(ensure_tiny_model(seed=cfg.seed)) if cfg.model == "tiny" else cfg.model  # init from the seed
    warm = ensure_warm_start(
        cfg.task,
        out / "warm_start",
        task_params=cfg.task_params,
        model=str(base),
        seed=cfg.seed,
        data_seed=cfg.seed + TEACHER_DATA_SEED,
        section=cfg.warm_start,
    )
    clock["sft"] = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(warm)
    before = evaluate(model, tokenizer, task, n=cfg.eval_n, seed=cfg.eval_seed)
    clock["eval0"] = time.perf_counter()
    args = grpo_config(cfg, out / "grpo", completion_token_budget(task, tokenizer))
    trainer = build_grpo_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        grpo_config=args,
        dataset=prompt_dataset(task, cfg.seed, range(cfg.n_prompts), tokenizer=tokenizer),
        lora_config=cfg.lora.peft_config(),
    )
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    clock["grpo"] = time.perf_counter()
    after = evaluate(trainer.model, tokenizer, task, n=cfg.eval_n, seed=cfg.eval_seed)
    clock["eval1"] = time.perf_counter()
    summary = _summary(cfg, before, after, clock, trainer.state.log_history)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _summary(cfg, before, after, clock, history) -> dict:
    stages = ("sft", "eval0", "grpo", "eval1")
    marks = [clock["start"]] + [clock[s] for s in stages]
    seconds = {s: round(b - a, 1) for s, a, b in zip(stages, marks[:-1], marks[1:], strict=True)}
    curve = [
        {"step": h["step"], "reward": h["reward"], "zero_std": h.get("frac_reward_zero_std")}
        for h in history
        if "reward" in h
    ]
    return {
        "seed": cfg.seed,
        "task": before["task"],
        "eval_n": cfg.eval_n,
        "eval_seed": cfg.eval_seed,
        "before": {k: before[k] for k in ("accuracy", "format_rate", "step_credit")},
        "after": {k: after[k] for k in ("accuracy", "format_rate", "step_credit")},
        "gain": after["accuracy"] - before["accuracy"],
        "seconds": seconds,
        "total_seconds": round(marks[-1] - marks[0], 1),
        "reward_curve": curve,
        "examples_after": after["examples"][:4],
    }


def aggregate(summaries: list[dict]) -> dict:
    """Mean and spread (sample std, min, max) of before/after accuracy and gain over seeds."""

    def stats(values):
        return {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values),
            "max": max(values),
            "values": values,
        }

    return {
        "seeds": [s["seed"] for s in summaries],
        "before": stats([s["before"]["accuracy"] for s in summaries]),
        "after": stats([s["after"]["accuracy"] for s in summaries]),
        "gain": stats([s["gain"] for s in summaries]),
        "total_seconds": stats([s["total_seconds"] for s in summaries]),
    }


def print_summary(summaries: dict | list[dict], aggregated: dict | None = None) -> None:
    """A rich table: per seed accuracy before/after GRPO, gain, wall time; plus mean +- std."""
    from rich.console import Console
    from rich.table import Table

    rows = [summaries] if isinstance(summaries, dict) else summaries
    table = Table(title=f"single-peer pipeline: {rows[0]['task']} (held-out pass@1, n={rows[0]['eval_n']})")
    for column in ("seed", "warm start", "after GRPO", "gain", "format", "SFT s", "GRPO s", "total s"):
        table.add_column(column, justify="right")
    for s in rows:
        table.add_row(
            str(s["seed"]),
            f"{s['before']['accuracy']:.3f}",
            f"{s['after']['accuracy']:.3f}",
            f"{s['gain']:+.3f}",
            f"{s['after']['format_rate']:.2f}",
            f"{s['seconds']['sft']:.0f}",
            f"{s['seconds']['grpo']:.0f}",
            f"{s['total_seconds']:.0f}",
        )
    if aggregated:
        b, a, g = aggregated["before"], aggregated["after"], aggregated["gain"]
        table.add_row(
            "mean±sd",
            f"{b['mean']:.2f}±{b['std']:.2f}",
            f"{a['mean']:.2f}±{a['std']:.2f}",
            f"{g['mean']:+.2f}±{g['std']:.2f}",
            "",
            "",
            "",
            "",
        )
    Console(width=max(Console().width, 100)).print(table)


def plot_summaries(summaries: list[dict], path: str | Path) -> Path:
    """PNG: before/after accuracy per seed (left) and the GRPO mean reward per logged step (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bars, curves) = plt.subplots(1, 2, figsize=(10, 3.8))
    xs = range(len(summaries))
    bars.bar([x - 0.2 for x in xs], [s["before"]["accuracy"] for s in summaries], 0.4, label="warm start")
    bars.bar([x + 0.2 for x in xs], [s["after"]["accuracy"] for s in summaries], 0.4, label="after GRPO")
    bars.set_xticks(list(xs), [f"seed {s['seed']}" for s in summaries])
    bars.set_ylim(0, 1)
    bars.set_ylabel("held-out pass@1")
    bars.legend()
    for s in summaries:
        curves.plot(
            [p["step"] for p in s["reward_curve"]], [p["reward"] for p in s["reward_curve"]], label=f"seed {s['seed']}"
        )
    curves.set_xlabel("GRPO step")
    curves.set_ylabel("mean reward (sampled)")
    curves.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def run_seeds(cfg: PipelineConfig, seeds: list[int]) -> tuple[list[dict], dict]:
    """Run the pipeline once per seed; write seeds.json + seeds.png under `cfg.output_dir`."""
    summaries = [run_single_peer(dataclasses.replace(cfg, seed=s)) for s in seeds]
    aggregated = aggregate(summaries)
    out = Path(cfg.output_dir)
    (out / "seeds.json").write_text(json.dumps({"aggregate": aggregated, "runs": summaries}, indent=2))
    plot_summaries(summaries, out / "seeds.png")
    return summaries, aggregated
