"""Benchmark: our GRPO + LoRA recipe vs a plain hand-written TRL GRPOTrainer script, side by side.

    python bench/grpo_overhead.py                 # 30 steps x 3 rounds -> outputs/bench/grpo_overhead.{json,png}
    python bench/grpo_overhead.py --steps 10 --rounds 1

Both sides use the same model (a briefly warm-started tiny model), the same prompts (train split,
seed 0), the same GRPOConfig (seed, batch, generations, temperature, lr) and the same LoRA config;
only the code path differs:
  ours  = trainer.grpo.build_grpo_trainer(...) with trainer.rewards (Sample JSON per row, strict
          verifier, format and step-credit rewards);
  plain = GRPOTrainer(...) with one regex correctness reward, as in TRL's documentation.
Rounds alternate ours/plain so that load from other processes hits both alike. Reported: samples/s
(completions per second of train_runtime) and completion tokens/s, median per side, and the ratio
ours/plain as the median of per-round ratios (goal >= 0.95).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

OUT = Path("outputs/bench")
ANSWER = re.compile(r"<a>(.*?)</a>")


def plain_correctness(prompts, completions, answer, **kwargs):
    """The reward a plain TRL script would write: 1 if the tagged answer equals the reference."""
    found = [ANSWER.search(c) for c in completions]
    return [1.0 if m and m.group(1).strip() == a else 0.0 for m, a in zip(found, answer, strict=True)]


def grpo_args(out_dir: Path, steps: int, seed: int):
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out_dir),
        max_steps=steps,
        per_device_train_batch_size=32,
        num_generations=8,
        max_completion_length=48,
        temperature=0.7,
        beta=0.0,
        learning_rate=5e-4,
        seed=seed,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        logging_steps=steps,
        disable_tqdm=True,
    )


def run_side(side: str, model_dir: Path, steps: int, seed: int) -> dict:
    """Train `steps` GRPO steps on one side; returns samples/s and completion tokens/s."""
    from trl import GRPOTrainer

    from trainer.config import LoraSection
    from trainer.grpo import build_grpo_trainer, prompt_dataset
    from trainer.models import load_model_and_tokenizer
    from trainer.tasks import get_task

    task = get_task("arithmetic", digits=2)
    model, tokenizer = load_model_and_tokenizer(model_dir)
    dataset = prompt_dataset(task, seed, range(steps * 4 + 8))
    args = grpo_args(OUT / f"run-{side}", steps, seed)
    if side == "ours":
        trainer = build_grpo_trainer(
            model=model,
            tokenizer=tokenizer,
            task=task,
            dataset=dataset,
            grpo_config=args,
            lora_config=LoraSection().peft_config(),
        )
    else:
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[plain_correctness],
            args=args,
            train_dataset=dataset.select_columns(["prompt", "answer"]),
            processing_class=tokenizer,
            peft_config=LoraSection().peft_config(),
        )
    metrics = trainer.train().metrics
    tokens = sum(h.get("completions/mean_length", 0) for h in trainer.state.log_history) or 0.0
    mean_length = tokens / max(1, sum(1 for h in trainer.state.log_history if "completions/mean_length" in h))
    samples = steps * args.per_device_train_batch_size
    seconds = metrics["train_runtime"]
    return {
        "side": side,
        "seconds": seconds,
        "samples_per_s": samples / seconds,
        "tokens_per_s": samples * mean_length / seconds,
        "mean_completion_tokens": mean_length,
    }


def summarize(runs: list[dict]) -> dict:
    """Medians per side, and the ratio ours/plain as the median of per-round ratios.

    Each round runs both sides back to back, so a per-round ratio cancels the slow drift of load
    from other processes on a shared box; the median over rounds drops an outlier round.
    """
    keys = ("samples_per_s", "tokens_per_s", "mean_completion_tokens")
    result = {
        side: {k: statistics.median(r[k] for r in runs if r["side"] == side) for k in keys}
        for side in ("ours", "plain")
    }
    rounds = [dict((r["side"], r) for r in runs[i : i + 2]) for i in range(0, len(runs), 2)]
    for key in ("samples_per_s", "tokens_per_s"):
        ratios = [pair["ours"][key] / pair["plain"][key] for pair in rounds]
        result[f"round_ratios_{key}"] = ratios
        result[f"ratio_{key}"] = statistics.median(ratios)
    return result


def report(summary: dict, runs: list[dict], config: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rich.console import Console
    from rich.table import Table

    table = Table(title="GRPO + LoRA throughput: ours vs plain TRL (ratio = median of per-round ratios)")
    for column in ("metric", "ours", "plain TRL", "ratio ours/plain"):
        table.add_column(column, justify="right")
    for key, ratio in (("samples_per_s", "ratio_samples_per_s"), ("tokens_per_s", "ratio_tokens_per_s")):
        table.add_row(key, f"{summary['ours'][key]:.2f}", f"{summary['plain'][key]:.2f}", f"{summary[ratio]:.3f}")
    Console().print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "grpo_overhead.json").write_text(json.dumps({"config": config, "summary": summary, "runs": runs}, indent=2))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, side in enumerate(("ours", "plain")):
        values = [r["samples_per_s"] for r in runs if r["side"] == side]
        ax.scatter([i] * len(values), values, alpha=0.6)
        ax.bar(i, summary[side]["samples_per_s"], 0.5, alpha=0.4, label=f"{side} (median)")
    ax.set_xticks([0, 1], ["ours", "plain TRL"])
    ax.set_ylabel("completions / s")
    ax.set_title(f"ratio {summary['ratio_samples_per_s']:.3f}")
    fig.tight_layout()
    fig.savefig(OUT / "grpo_overhead.png", dpi=100)
    print(f"wrote {OUT / 'grpo_overhead.json'} and {OUT / 'grpo_overhead.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm_start_steps", type=int, default=100)
    parser.add_argument("--torch_threads", type=int, default=1)
    options = parser.parse_args()
    from trainer.models import set_torch_threads
    from trainer.sft import ensure_warm_start

    set_torch_threads(options.torch_threads)
    model_dir = ensure_warm_start(
        "arithmetic",
        OUT / "warm_start",
        task_params={"digits": 2},
        max_steps=options.warm_start_steps,
        disable_tqdm=True,
    )
    runs = []
    for round_index in range(options.rounds):
        order = ("ours", "plain") if round_index % 2 == 0 else ("plain", "ours")
        runs += [run_side(side, model_dir, options.steps, options.seed) for side in order]
    report(summarize(runs), runs, vars(options))


if __name__ == "__main__":
    main()
