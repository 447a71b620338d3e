"""Held-out evaluation: greedy pass@1 on a seeded eval set, and a JSON + PNG report.

    from trainer.eval import evaluate, write_report
    result = evaluate(model, tokenizer, task, n=200, seed=0)   # {"accuracy": 0.41, ...}
    write_report({"warm start": r0, "grpo": r1}, "outputs/eval")  # eval.json + eval.png

Samples come from `task.sample(seed, i, split="eval")` for i < n (disjoint from training by
construction). Decoding is greedy with left padding, so a result is a pure function of
(model weights, task, n, seed). CLI: `hivetune eval --model PATH [--adapter PATH] --task T`.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.rewards import score
from trainer.tasks import Task


def generate_greedy(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy completions for `prompts` (special tokens stripped)."""
    return _generate(model, tokenizer, prompts, batch_size, max_new_tokens=max_new_tokens, do_sample=False)


def _generate(model, tokenizer, prompts: list[str], batch_size: int, **generate_kwargs) -> list[str]:
    """`model.generate` over `prompts` in left-padded batches; the decoded new text of every returned sequence
    (`num_return_sequences` of them per prompt, in order)."""
    import torch

    tokenizer.padding_side = "left"
    model.eval()
    outputs = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(
            prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        with torch.no_grad():
            ids = model.generate(
                **batch, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **generate_kwargs
            )
        outputs += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return outputs


def evaluate(
    model,
    tokenizer,
    task: Task,
    *,
    n: int,
    seed: int,
    batch_size: int = 64,
    max_new_tokens: int | None = None,
    keep_completions: int = 8,
) -> dict:
    """Greedy pass@1 of `model` on `n` held-out samples of `task` drawn with `seed`."""
    from trainer.prompts import completion_token_budget, render_prompt

    samples = [task.sample(seed, i, split="eval") for i in range(n)]
    budget = max_new_tokens or completion_token_budget(task, tokenizer)
    prompts = [render_prompt(task, s, tokenizer) for s in samples]
    completions = generate_greedy(model, tokenizer, prompts, max_new_tokens=budget, batch_size=batch_size)
    scores = [score(task, s, c) for s, c in zip(samples, completions, strict=True)]
    mean = {name: sum(sc[name] for sc in scores) / max(n, 1) for name in scores[0]} if scores else {}
    return {
        "task": task.key,
        "n": n,
        "seed": seed,
        "accuracy": mean.get("correctness", 0.0),
        "format_rate": mean.get("format", 0.0),
        "step_credit": mean.get("steps", 0.0),
        "examples": [
            {"prompt": p, "completion": c, "answer": s.answer}
            for p, s, c in list(zip(prompts, samples, completions, strict=True))[:keep_completions]
        ],
    }


def write_report(results: dict[str, dict], out_dir: str | Path, *, title: str = "held-out pass@1") -> Path:
    """Write `eval.json` (all results) and `eval.png` (accuracy and format rate per model) to `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(results, indent=2))
    names = list(results)
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(names)), 3.5))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [results[k]["accuracy"] for k in names], 0.4, label="pass@1")
    ax.bar([x + 0.2 for x in xs], [results[k]["format_rate"] for k in names], 0.4, label="format")
    ax.set_xticks(list(xs), names)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "eval.png", dpi=100)
    plt.close(fig)
    return out / "eval.json"


def generate_sampled(
    model,
    tokenizer,
    prompts: list[str],
    *,
    k: int,
    temperature: float,
    max_new_tokens: int,
    batch_size: int = 64,
    seed: int = 0,
) -> list[list[str]]:
    """`k` sampled completions per prompt at `temperature` (seeded: a pure function of weights and seed)."""
    import torch

    torch.manual_seed(seed)
    texts = _generate(model, tokenizer, prompts, max(1, batch_size // k), max_new_tokens=max_new_tokens,
                      do_sample=True, temperature=temperature, top_k=0, top_p=1.0, num_return_sequences=k)  # fmt: skip
    return [texts[i : i + k] for i in range(0, len(texts), k)]


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimate from `c` correct of `n` samples (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def score_problems(
    model,
    tokenizer,
    task: Task,
    *,
    n: int,
    seed: int,
    k: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int | None = None,
    batch_size: int = 64,
) -> dict:
    """Per held-out problem: greedy correctness (0/1) and the number correct of `k` samples.

    Returns {"greedy": [0/1]*n, "sampled_correct": [c]*n, "k": k, ...}: sampled pass@1 is
    mean(c)/k and pass@k is mean(c > 0) (k samples, so the unbiased estimator is exact).
    """
    from trainer.prompts import completion_token_budget, render_prompt

    samples = [task.sample(seed, i, split="eval") for i in range(n)]
    prompts = [render_prompt(task, s, tokenizer) for s in samples]
    budget = max_new_tokens or completion_token_budget(task, tokenizer)
    greedy = generate_greedy(model, tokenizer, prompts, max_new_tokens=budget, batch_size=batch_size)
    sampled = generate_sampled(
        model,
        tokenizer,
        prompts,
        k=k,
        temperature=temperature,
        max_new_tokens=budget,
        batch_size=batch_size,
        seed=seed,
    )
    return {
        "greedy": [int(task.verify(c, s)) for c, s in zip(greedy, samples, strict=True)],
        "sampled_correct": [sum(task.verify(c, s) for c in group) for group, s in zip(sampled, samples, strict=True)],
        "k": k,
        "temperature": temperature,
        "examples": [{"completion": c, "answer": s.answer} for c, s in list(zip(greedy, samples, strict=True))[:4]],
    }
