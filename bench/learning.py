"""Benchmark: does GRPO learn more than supervised baselines at an equal number of sampled completions?

    python bench/learning.py                   # tiny model, 5 seeds, n=500 -> outputs/bench/learning_tiny.*
    python bench/learning.py --model smollm2 --seeds 1 --eval_n 100 --k 4
    python bench/learning.py --seeds 2 --eval_n 200 --steps 60   # what fits a busy 2-core box
    python bench/learning.py --seed_list 0 1 2 --name a & python bench/learning.py --seed_list 3 4 --name b
    python bench/learning.py --merge outputs/bench/a.json outputs/bench/b.json   # one 5-seed table
    python bench/learning.py --model tiny-countdown --arms "GRPO outcome" --grpo num_iterations=2 learning_rate=3e-4

Per seed, from the same warm start W (an SFT of the base on an *exact* teacher: no deliberate flaw,
`warm_steps` x `warm_batch` traces, each seen once), each arm processes the same number of
completions N = steps x batch (LoRA r=`lora_r` in every arm):
  1. continued SFT (same data)   : the issue's SFT baseline, as in the RL post-training literature:
                                   N more SFT examples drawn from W's own SFT dataset (more epochs on
                                   the same traces, `sft_lr`); no new teacher calls
  2. fresh-teacher SFT (oracle)  : N *new* exact-teacher traces on the training prompts. With an
                                   unlimited exact teacher supervised data is the best use of N, so
                                   this is an upper bound, reported, not the baseline to beat
  3. rejection FT                : N completions sampled from W on training prompts; SFT on the correct ones
  4. GRPO outcome                : GRPO + LoRA, reward = correctness only
  5. GRPO + credit               : GRPO + LoRA, reward = correctness + format (+ step credit where the task has it)
  6. W-REINFORCE outcome         : GRPO's loop and loss with W-REINFORCE's advantages (Zhu et al. 2025, "The
                                   Surprising Effectiveness of Negative Reinforcement in LLM Reasoning"): +lambda
                                   (`--positive_weight`, 0.1) for a correct completion, -1 for a wrong one, no group
                                   baseline, so a group with no correct sample still teaches
Metrics on `eval_n` held-out problems (the eval split, disjoint from training by construction):
greedy pass@1, sampled pass@1 (k samples at `eval_temperature`), pass@k. 95% CIs by bootstrap over
problems (seeds averaged inside each resample; `ci95_seeds_and_problems` also resamples seeds, so it counts
seed-to-seed training variance too); the differences of every arm vs continued SFT (same
data), rejection FT and the oracle are paired by problem and seed (`minus` in the JSON;
`minus_continued_sft` is the one vs the baseline). Seed spread = the standard deviation of per-seed
means. Writes JSON + PNG.

Models: `tiny` (character model; task arithmetic, 2 digits, CoT format), `tiny-countdown` (the same model on
Countdown, 3 numbers <= 10; its credit arm adds format and the step credit: each trace line's arithmetic) or
`smollm2` (the built-in SmolLM2-135M-Instruct; reasoning-gym chain_sum, answer-only format, chat template).

Why the tiny setting is a 240-step warm start and 100 steps x 32 per arm (seed 0, n=200, T=0.7):
the exact teacher's warm start jumps from greedy 0.28 / sampled 0.08 / pass@8 0.46 at 200 steps to
0.88 / 0.51 / 0.93 at 240 and 0.985 / 0.76 / 0.995 at 270 (nothing left to learn). At 200 steps the
outcome reward is ill-posed: only 2.5% of the sampled completions with a correct answer have a
correct trace (the answer is guessed, not derived), so GRPO and RFT reinforce guesses and lower
greedy accuracy (GRPO from it: 0.28 -> 0.195 after 30 steps at lr 2e-4, 0.13 after 60 at 1e-4; 60
steps at 2e-5 / 5e-5: 0.27 / 0.245, within noise). At 240 steps 83% of correct samples have the
exact trace. GRPO lr 2e-4 (the single-peer pipeline's): 60-step probes from the 240-step warm start
gave greedy 0.875 (2e-4), 0.85 (5e-4), 0.825 (1e-3) from 0.88, none better. T=0.7 for rollouts and
sampled metrics (T=1.0 halves the sampled accuracy, fewer rewarded groups). Completions: at most 47
characters + EOS for a correct trace, so `max_completion` 48 truncates none of them (TRL's clipped
ratio 0-3% per step). 3 digits after 150 steps gave 0.00 and pass@8 0.00.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

BASELINE = "continued SFT (same data)"  # the SFT baseline: more epochs on the warm start's own data
ORACLE = "fresh-teacher SFT (oracle)"  # an upper bound: new exact-teacher traces (an unlimited teacher)
WREINFORCE = "W-REINFORCE outcome"  # signed outcome advantages, no group baseline (Zhu et al. 2025)
ARMS = ("warm start", BASELINE, ORACLE, "rejection FT", "GRPO outcome", "GRPO + credit", WREINFORCE)
COMPARED_TO = (BASELINE, "rejection FT", ORACLE)  # paired differences of every other arm against these
METRICS = ("greedy pass@1", "sampled pass@1", "pass@k")


@dataclass
class Setting:
    model: str
    task: str
    task_params: dict
    warm_steps: int
    warm_lr: float
    steps: int
    batch: int
    generations: int
    max_completion: int
    temperature: float
    grpo_lr: float
    sft_lr: float
    credit_rewards: tuple
    credit_weights: tuple
    lora_r: int
    warm_batch: int
    warm_traces: int | None = None  # distinct teacher traces of the warm start (None: one per example, no repeats)


SETTINGS = {
    "tiny": Setting(
        "tiny",
        "arithmetic",
        {"digits": 2},
        240,
        3e-3,
        100,
        32,
        8,
        48,
        0.7,
        2e-4,
        5e-4,
        ("correctness", "format", "steps"),
        (1.0, 0.1, 0.5),
        16,
        32,
    ),
    "smollm2": Setting(
        "smollm2-135m-instruct",
        "gym",
        {"dataset": "chain_sum", "config": "min_terms=2;max_terms=2;min_digits=1;max_digits=2"},
        24,
        5e-4,
        60,
        8,
        4,
        16,
        1.0,
        1e-4,
        1e-4,
        ("correctness", "format"),
        (1.0, 0.1),
        8,
        8,
    ),
}

# the tiny model on Countdown (3 numbers <= 10): many valid answers, pass@8 far above pass@1 after the warm start
SETTINGS["tiny-countdown"] = replace(
    SETTINGS["tiny"], task="countdown", task_params={"count": 3, "max_number": 10},
    credit_rewards=("correctness", "format", "steps"), credit_weights=(1.0, 0.1, 0.5),
)  # fmt: skip


def lora(setting: Setting):
    from trainer.config import LoraSection

    return LoraSection(r=setting.lora_r, alpha=2 * setting.lora_r).peft_config()


def sft_arm(setting, warm, task, rows, out, seed):
    """LoRA SFT on `rows` (prompt, completion) for `setting.steps` steps of `setting.batch`."""
    from datasets import Dataset
    from trl import SFTTrainer

    from trainer.models import load_model_and_tokenizer
    from trainer.sft import sft_config

    model, tokenizer = load_model_and_tokenizer(warm)
    args = sft_config(
        out,
        max_steps=setting.steps,
        batch_size=setting.batch,
        learning_rate=setting.sft_lr,
        seed=seed,
        warmup_steps=0,
        lr_scheduler_type="constant",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_dict(rows),
        processing_class=tokenizer,
        peft_config=lora(setting),
    )
    trainer.train()
    return trainer.model, tokenizer


def warm_start_rows(setting, task, tokenizer, seed):
    """The warm start's own SFT data (same seed, same traces, as `ensure_warm_start` built it in `run_seed`)."""
    from trainer.sft import sft_dataset

    n = warm_section(setting).traces()
    dataset = sft_dataset(task, seed=warm_data_seed(seed), n=n, tokenizer=tokenizer)
    return {"prompt": list(dataset["prompt"]), "completion": list(dataset["completion"])}


def warm_section(setting: Setting):
    from trainer.config import WarmStartSection

    limit = {} if setting.warm_traces is None else {"n_samples": setting.warm_traces}
    return WarmStartSection(max_steps=setting.warm_steps, batch_size=setting.warm_batch, **limit)


def warm_data_seed(seed: int) -> int:
    from trainer.config import TEACHER_DATA_SEED

    return TEACHER_DATA_SEED + seed


def teacher_rows(setting, task, tokenizer, seed, n):
    from trainer.prompts import render_prompt

    samples = [task.sample(10_000 + seed, i) for i in range(n)]  # fresh problems, not the warm start's
    return {
        "prompt": [render_prompt(task, s, tokenizer) for s in samples],
        "completion": [task.teacher_trace(s) for s in samples],
    }


def rejection_rows(setting, warm, task, seed, n):
    """Sample n completions from the warm start (n / generations prompts); keep the correct ones."""
    from trainer.eval import generate_sampled
    from trainer.models import load_model_and_tokenizer
    from trainer.prompts import render_prompt

    model, tokenizer = load_model_and_tokenizer(warm)
    samples = [task.sample(10_000 + seed, i) for i in range(n // setting.generations)]
    prompts = [render_prompt(task, s, tokenizer) for s in samples]
    groups = generate_sampled(
        model,
        tokenizer,
        prompts,
        k=setting.generations,
        temperature=setting.temperature,
        max_new_tokens=setting.max_completion,
        seed=seed,
    )
    rows = {"prompt": [], "completion": []}
    for prompt, sample, group in zip(prompts, samples, groups, strict=True):
        for completion in group:
            if task.verify(completion, sample):
                rows["prompt"].append(prompt)
                rows["completion"].append(completion)
    return rows


def weighted_reinforce_trainer(positive_weight: float):
    """A GRPOTrainer whose advantages are W-REINFORCE's: `positive_weight` where the first reward (correctness)
    is 1, -1 where it is 0; the clipped loss, its token normalization and everything else are GRPO's."""
    import torch
    from trl import GRPOTrainer

    class WeightedReinforceTrainer(GRPOTrainer):
        def _calculate_rewards(self, *args, **kwargs):
            self._rewards_per_func = super()._calculate_rewards(*args, **kwargs)
            return self._rewards_per_func

        def _generate_and_score_completions(self, inputs):
            batch = super()._generate_and_score_completions(inputs)
            if self.accelerator.num_processes != 1:
                raise SystemExit("error: the W-REINFORCE arm runs on one process")
            correct = self._rewards_per_func[:, 0] > 0.5
            advantages = batch["advantages"]
            batch["advantages"] = torch.where(correct.to(advantages.device), positive_weight, -1.0).to(advantages)
            return batch

    return WeightedReinforceTrainer


def negative_scaled_trainer(negative_scale: float):
    """A GRPOTrainer whose negative (group-normalized) advantages are multiplied by `negative_scale`."""
    import torch
    from trl import GRPOTrainer

    class NegativeScaledTrainer(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            batch = super()._generate_and_score_completions(inputs)
            advantages = batch["advantages"]
            batch["advantages"] = torch.where(advantages < 0, advantages * negative_scale, advantages)
            return batch

    return NegativeScaledTrainer


def grpo_arm(setting, warm, task, out, seed, rewards, weights, overrides=None, trainer_cls=None):
    """GRPO + LoRA on `steps x batch` fresh completions; `overrides` are GRPOConfig fields (the bench's --grpo).

    With `num_iterations` = mu each generation batch is optimized mu times, so the run takes mu x `steps`
    optimizer steps for the same number of sampled completions.
    """
    from trl import GRPOConfig, GRPOTrainer

    from trainer.grpo import build_grpo_trainer, prompt_dataset, reward_functions
    from trainer.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(warm)
    prompts = setting.steps * setting.batch // setting.generations
    fields = {
        "output_dir": str(out),
        "per_device_train_batch_size": setting.batch,
        "num_generations": setting.generations,
        "max_completion_length": setting.max_completion,
        "temperature": setting.temperature,
        "beta": 0.0,
        "learning_rate": setting.grpo_lr,
        "lr_scheduler_type": "constant",
        "seed": seed,
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "save_strategy": "no",
        "logging_steps": 10,
        "disable_tqdm": True,
        "reward_weights": list(weights),
    } | dict(overrides or {})
    args = GRPOConfig(max_steps=setting.steps * int(fields.get("num_iterations", 1)), **fields)
    trainer = build_grpo_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        grpo_config=args,
        lora_config=lora(setting),
        dataset=prompt_dataset(task, 10_000 + seed, range(prompts), tokenizer=tokenizer),
        reward_funcs=reward_functions(task, rewards),
        trainer_cls=trainer_cls or GRPOTrainer,
    )
    trainer.train()
    return trainer.model, tokenizer


def ensure_seed_warm_start(setting, path, *, seed):
    """The warm start W of `seed`: SFT of the base on `warm_steps` x `warm_batch` exact-teacher traces."""
    from trainer.sft import ensure_warm_start

    return ensure_warm_start(
        setting.task,
        path,
        task_params=setting.task_params,
        model=setting.model,
        section=warm_section(setting),
        learning_rate=setting.warm_lr,
        seed=seed,
        data_seed=warm_data_seed(seed),
        disable_tqdm=True,
    )


def run_seed(setting, seed, opts, out) -> dict:
    from trainer.eval import score_problems
    from trainer.models import load_model_and_tokenizer, load_tokenizer
    from trainer.tasks import get_task

    task = get_task(setting.task, **setting.task_params)
    warm = ensure_seed_warm_start(setting, out / f"warm-seed{seed}", seed=seed)
    n = setting.steps * setting.batch
    scores, times = {}, {}

    def measure(arm, build):
        start = time.monotonic()
        model, tokenizer = build()
        trained = time.monotonic()
        scores[arm] = score_problems(
            model,
            tokenizer,
            task,
            n=opts.eval_n,
            seed=opts.eval_seed,
            k=opts.k,
            temperature=opts.eval_temperature,
            max_new_tokens=setting.max_completion,
        )
        times[arm] = {"train_s": trained - start, "eval_s": time.monotonic() - trained}
        print(
            f"seed {seed} {arm:26s} greedy {statistics.mean(scores[arm]['greedy']):.3f} "
            f"sampled {statistics.mean(scores[arm]['sampled_correct']) / opts.k:.3f} "
            f"pass@{opts.k} {statistics.mean(c > 0 for c in scores[arm]['sampled_correct']):.3f} "
            f"({times[arm]['train_s']:.0f}+{times[arm]['eval_s']:.0f} s)",
            flush=True,
        )

    measure("warm start", lambda: load_model_and_tokenizer(warm))
    warm_tokenizer = load_tokenizer(warm)
    rows = {  # each arm's data, built before its clock starts (as rejection FT's sampling)
        BASELINE: lambda: warm_start_rows(setting, task, warm_tokenizer, seed),
        ORACLE: lambda: teacher_rows(setting, task, warm_tokenizer, seed, n),
        "rejection FT": lambda: rejection_rows(setting, warm, task, seed, n),
    }
    grpo_rewards = {
        "GRPO outcome": (("correctness",), (1.0,)),
        "GRPO + credit": (setting.credit_rewards, setting.credit_weights),
        WREINFORCE: (("correctness",), (1.0,)),
    }
    work = {BASELINE: "sft", ORACLE: "oracle", "rejection FT": "rft", "GRPO outcome": "grpo", "GRPO + credit": "grpo2",
            WREINFORCE: "wreinforce"}  # fmt: skip
    rft_kept = 0
    for arm in (a for a in ARMS[1:] if a in opts.arms):
        if arm in rows:
            data = rows[arm]()
            if arm == "rejection FT":
                rft_kept = len(data["prompt"])
                if not rft_kept:
                    continue  # no correct sample to train on
            measure(arm, lambda arm=arm, data=data: sft_arm(setting, warm, task, data, out / work[arm], seed))
        else:
            rewards, weights = grpo_rewards[arm]
            cls = weighted_reinforce_trainer(opts.positive_weight) if arm == WREINFORCE else None
            if arm != WREINFORCE and opts.negative_scale != 1.0:
                cls = negative_scaled_trainer(opts.negative_scale)
            measure(
                arm,
                lambda arm=arm, r=rewards, w=weights, cls=cls: grpo_arm(
                    setting, warm, task, out / work[arm], seed, r, w, opts.grpo, cls
                ),
            )
    return {"seed": seed, "scores": scores, "times": times, "rft_kept": rft_kept, "completions": n}


def metric_values(score: dict, k: int) -> dict[str, list[float]]:
    return {
        "greedy pass@1": [float(g) for g in score["greedy"]],
        "sampled pass@1": [c / k for c in score["sampled_correct"]],
        "pass@k": [float(c > 0) for c in score["sampled_correct"]],
    }


def bootstrap(per_seed: list[list[float]], reps: int = 2000, rng_seed: int = 0) -> tuple[float, float, float]:
    """(mean, lo, hi): mean over seeds and problems; 95% CI resampling problems (same indices in every seed)."""
    rng = random.Random(rng_seed)
    n = len(per_seed[0])
    mean = statistics.mean(statistics.mean(values) for values in per_seed)
    draws = []
    for _ in range(reps):
        idx = [rng.randrange(n) for _ in range(n)]
        draws.append(statistics.mean(statistics.mean(values[i] for i in idx) for values in per_seed))
    draws.sort()
    return mean, draws[int(0.025 * reps)], draws[int(0.975 * reps) - 1]


def bootstrap_seeds_and_problems(per_seed: list[list[float]], reps: int = 2000, rng_seed: int = 0):
    """(mean, lo, hi) with a 95% CI resampling seeds *and* problems (crossed: the same problem indices in every
    drawn seed). `bootstrap` holds the trained models fixed, so its CI leaves out seed-to-seed training variance;
    this one includes it (wider when seeds disagree; with one seed it is the problem bootstrap)."""
    import numpy as np

    values = np.asarray(per_seed, dtype=float)  # seeds x problems
    seeds, n = values.shape
    rng = np.random.default_rng(rng_seed)
    draws = np.empty(reps)
    for start in range(0, reps, 200):  # 200 resamples at a time: seeds x problems x 200 floats in memory
        size = min(200, reps - start)
        pick = rng.integers(seeds, size=(size, seeds))[:, :, None]
        idx = rng.integers(n, size=(size, n))[:, None, :]
        draws[start : start + size] = values[pick, idx].mean(axis=(1, 2))
    draws.sort()
    return float(values.mean()), float(draws[int(0.025 * reps)]), float(draws[int(0.975 * reps) - 1])


def summarize(runs: list[dict], k: int) -> dict:
    def hier(per_seed):
        return list(bootstrap_seeds_and_problems(per_seed)[1:])

    arms = [a for a in ARMS if all(a in r["scores"] for r in runs)]
    table = {}
    for arm in arms:
        table[arm] = {}
        for metric in METRICS:
            per_seed = [metric_values(r["scores"][arm], k)[metric] for r in runs]
            mean, lo, hi = bootstrap(per_seed)
            seed_means = [statistics.mean(v) for v in per_seed]
            spread = statistics.stdev(seed_means) if len(seed_means) > 1 else 0.0
            entry = {"mean": mean, "ci95": [lo, hi], "ci95_seeds_and_problems": hier(per_seed)}
            entry |= {"seed_means": seed_means, "seed_spread": spread}
            entry["minus"] = {}
            for other in COMPARED_TO:
                if other == arm or other not in arms:
                    continue
                base = [metric_values(r["scores"][other], k)[metric] for r in runs]
                diff = [[a - b for a, b in zip(x, y, strict=True)] for x, y in zip(per_seed, base, strict=True)]
                d, dlo, dhi = bootstrap(diff)
                entry["minus"][other] = {"mean": d, "ci95": [dlo, dhi], "ci95_seeds_and_problems": hier(diff)}
            if BASELINE in entry["minus"]:
                entry["minus_continued_sft"] = entry["minus"][BASELINE]
            if arm != "warm start":
                base = [metric_values(r["scores"]["warm start"], k)[metric] for r in runs]
                gain = [statistics.mean(x) - statistics.mean(y) for x, y in zip(per_seed, base, strict=True)]
                entry["gain_over_warm_start"] = statistics.mean(gain)
            table[arm][metric] = entry
    return table


def plot(table: dict, k: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(table)
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / len(METRICS)
    for j, metric in enumerate(METRICS):
        means = [table[a][metric]["mean"] for a in arms]
        errs = [
            [m - table[a][metric]["ci95"][0] for a, m in zip(arms, means, strict=True)],
            [table[a][metric]["ci95"][1] - m for a, m in zip(arms, means, strict=True)],
        ]
        label = metric.replace("pass@k", f"pass@{k}")
        ax.bar([i + (j - 1) * width for i in range(len(arms))], means, width, yerr=errs, capsize=3, label=label)
    ax.set_xticks(range(len(arms)), [a.replace(" (", "\n(") for a in arms])
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(runs: list[dict], setting: Setting, opts, stem: Path, wall_s: float) -> dict:
    """Summarize `runs` and write `stem`.json and `stem`.png (after every seed, so a kill loses no finished seed)."""
    from trainer.models import library_versions

    table = summarize(runs, opts.k)
    report = {
        "setting": asdict(setting),
        "versions": library_versions(),
        "eval_n": opts.eval_n,
        "k": opts.k,
        "eval_temperature": opts.eval_temperature,
        "grpo_overrides": opts.grpo,
        "positive_weight": opts.positive_weight,
        "negative_scale": opts.negative_scale,
        "seeds": len(runs),
        "wall_s": wall_s,
        "table": table,
        "runs": [{key: r[key] for key in ("seed", "times", "rft_kept", "completions")} for r in runs],
        "per_problem": runs,
    }
    tmp = stem.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(stem.with_suffix(".json"))
    plot(
        table,
        opts.k,
        stem.with_suffix(".png"),
        f"{opts.model}: held-out, {len(runs)} seed(s), n={opts.eval_n}, {setting.steps * setting.batch} "
        "completions per arm"
        + ("" if setting.warm_traces is None else f", warm start on {setting.warm_traces} traces"),
    )
    return report


def merged_runs(paths: list[str], setting: Setting, opts) -> tuple[list[dict], float]:
    """The per-seed runs of several reports of this bench, checked to be one experiment (seeds run apart)."""
    from trainer.models import library_versions

    runs, wall, here = [], 0.0, library_versions()
    mine = {"setting": asdict(setting), "eval_n": opts.eval_n, "k": opts.k, "temperature": opts.eval_temperature}
    mine |= {"grpo": opts.grpo, "positive_weight": opts.positive_weight, "negative_scale": opts.negative_scale}
    mine = json.loads(json.dumps(mine))  # as a report stores it (tuples become lists)
    for path in paths:
        report = json.loads(Path(path).read_text())
        versions = report.get("versions")
        if versions is None:
            raise SystemExit(
                f"error: {path} records no library versions (written before reports kept them), so its seeds may "
                "come from other warm starts than this install builds; rerun those seeds here"
            )
        if versions != here:
            differ = ", ".join(f"{k} {versions.get(k)} there, {here.get(k)} here" for k in sorted(here | versions)
                               if versions.get(k) != here.get(k))  # fmt: skip
            raise SystemExit(
                f"error: {path} was run under other library versions ({differ}); the same seed trains other "
                "weights there: merge reports of one install (make setup installs constraints.txt)"
            )
        theirs = {key: report[key] for key in ("setting", "eval_n", "k")} | {"temperature": report["eval_temperature"]}
        theirs["setting"] = {"warm_traces": None} | theirs["setting"]  # reports from before --warm_traces
        theirs |= {"grpo": report.get("grpo_overrides", {}), "positive_weight": report.get("positive_weight", 0.1),
                   "negative_scale": report.get("negative_scale", 1.0)}  # fmt: skip
        if mine != theirs:
            raise SystemExit(
                f"error: {path} is not this experiment (setting, eval_n, k or temperature differ); pass the same "
                "--model, --eval_n, --k, --steps, --grpo, --positive_weight and --negative_scale it was run with"
            )
        runs += report["per_problem"]
        wall += report["wall_s"]
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"error: a seed appears twice in {paths} (seeds {sorted(seeds)}); merge each seed once")
    return sorted(runs, key=lambda r: r["seed"]), wall


def grpo_overrides(pairs: list[str]) -> dict:
    """`FIELD=VALUE` strings -> GRPOConfig overrides; VALUE is read as JSON (4, 5e-4, true, "dapo") or kept as text."""
    from trl import GRPOConfig

    known, out = {f.name for f in dataclass_fields(GRPOConfig)}, {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in known:
            raise SystemExit(
                f"error: --grpo {pair!r}: expected FIELD=VALUE with FIELD a GRPOConfig field (e.g. num_iterations=2)"
            )
        try:
            out[name] = json.loads(text)
        except json.JSONDecodeError:
            out[name] = text
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(SETTINGS), default="tiny")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed_list", type=int, nargs="+", default=None, help="these seeds (default 0..seeds-1)")
    parser.add_argument("--arms", nargs="+", choices=ARMS[1:], default=list(ARMS[1:]), help="arms to run (all)")
    parser.add_argument(
        "--grpo", nargs="+", default=[], metavar="FIELD=VALUE", help="GRPOConfig overrides (GRPO, W-REINFORCE arms)"
    )
    parser.add_argument(
        "--positive_weight", type=float, default=0.1, help="W-REINFORCE's lambda: a correct completion's advantage"
    )
    parser.add_argument(
        "--negative_scale", type=float, default=1.0, help="GRPO arms: negative advantages x this (1 = GRPO's own)"
    )
    parser.add_argument("--merge", nargs="+", default=None, help="JSONs of this bench: one table of all their seeds")
    parser.add_argument("--eval_n", type=int, default=500)
    parser.add_argument("--eval_seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--eval_temperature", type=float, default=None, help="default: the training temperature")
    parser.add_argument("--steps", type=int, default=None, help="override the setting's steps per arm")
    parser.add_argument("--warm_steps", type=int, default=None)
    parser.add_argument(
        "--warm_traces", type=int, default=None, help="distinct teacher traces of the warm start (default: no repeats)"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="outputs/bench")
    parser.add_argument("--name", default=None, help="output stem (default learning_<model>)")
    opts = parser.parse_args(argv)
    if opts.negative_scale != 1.0 and WREINFORCE in opts.arms and not opts.merge:
        parser.error("--negative_scale applies to the GRPO arms, not W-REINFORCE (its advantages are +lambda / -1): "
                     "run W-REINFORCE without it")  # fmt: skip
    if opts.warm_traces is not None and opts.warm_traces < 1:
        parser.error(f"--warm_traces {opts.warm_traces}: give at least 1 distinct teacher trace (or leave it out)")
    setting = SETTINGS[opts.model]
    if opts.steps:
        setting.steps = opts.steps
    if opts.warm_steps:
        setting.warm_steps = opts.warm_steps
    if opts.warm_traces is not None:
        setting.warm_traces = opts.warm_traces
    opts.eval_temperature = opts.eval_temperature or setting.temperature
    opts.grpo = grpo_overrides(opts.grpo)
    from trainer.models import set_torch_threads

    set_torch_threads(opts.threads)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (opts.name or f"learning_{opts.model}")
    started = time.monotonic()
    if opts.merge:
        runs, wall = merged_runs(opts.merge, setting, opts)
        report = write_report(runs, setting, opts, stem, wall)
    else:
        runs = []
        for seed in opts.seed_list if opts.seed_list is not None else range(opts.seeds):
            runs.append(run_seed(setting, seed, opts, out / f"{stem.name}_work"))
            report = write_report(runs, setting, opts, stem, time.monotonic() - started)
    table = report["table"]
    for arm, metrics in table.items():
        cells = []
        for metric, e in metrics.items():
            cell = f"{metric} {e['mean']:.3f} [{e['ci95'][0]:.3f},{e['ci95'][1]:.3f}]"
            for other, d in e["minus"].items():
                short = {BASELINE: "SFT", ORACLE: "oracle", "rejection FT": "RFT"}[other]
                lo, hi = d["ci95_seeds_and_problems"]
                cell += f" (vs {short} {d['mean']:+.3f} [{d['ci95'][0]:+.3f},{d['ci95'][1]:+.3f}]"
                cell += f", seeds too [{lo:+.3f},{hi:+.3f}])"
            cells.append(cell)
        print(f"{arm:26s} " + "; ".join(cells))
    return report


if __name__ == "__main__":
    main()
