"""Calibrate the validator's tolerances: honest false-positive rate of the token (CDF) and log-prob checks.

    python bench/attest_calibration.py                          # 10,240 honest rollouts, fp32 validator
    python bench/attest_calibration.py --eval-dtype bf16        # the validator evaluates in bfloat16
    python bench/attest_calibration.py --rollouts 2048 --tokens 24

Peers generate exactly as in training (trainer.seeded_generation: batched, KV cache, fp32, the run's
temperature); the validator recomputes each rollout with the deployed path (`completion_logits`: one
forward pass, batch of one, in `--eval-dtype`). Per rollout we record the worst CDF excursion (how far
the public uniform falls outside its token's recomputed interval, 0 inside) and the worst quantized
log-prob difference (milli-nats, as `check_logprobs` compares). Prints, per candidate tolerance, how
many honest rollouts would be flagged, the maximum observed, and the detection rate of each cheat at
the default draw rate (analytic, one validator and a quorum of 3). Writes
outputs/bench/attest_calibration-<dtype>.json.

Choice rule: the deployed tolerance is the smallest candidate that is >= 10x the largest honest error
observed over >= 10,000 rollouts. Errors are float round-off, bounded (not heavy-tailed): a 10x margin
over the maximum of 10^4 draws keeps the per-receipt false-flag rate far below 1e-6 (0 of N observed
even at the maximum; the 95% bound at the chosen tolerance is reported as 3/N per rollout, and the
empirical margin shows how far the tail sits below it).

Measured (2026-12-02; 10,240 honest rollouts each; tiny 128x4 + LoRA, T 0.7, 32 tokens; LM head x1 / x4 / x8 ->
mean token entropy 4.6 / 1.3 / 0.09 nats):
  fp32 eval: largest CDF excursion 0 / 3.3e-8 / 0, largest log-prob diff 1 milli-nat (rounding) -> deployed
             (1e-4, 10) flags 0; margins >= 3000x (CDF) and 10x (log-prob).
  bf16 eval: largest excursion 5.4e-4 / 7.6e-3 / 3.3e-3, log-prob 19 / 66 / 110 milli -> deployed (0.1, 1200)
             flags 0 (margins >= 13x / 10.9x); the older (2e-3, 40) flagged 1374 of 10,240 at entropy 1.3.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from coordination.attest.logprobs import completion_logits_batch  # noqa: E402
from coordination.attest.records import quantize_logprobs  # noqa: E402
from coordination.verify.audit import rollouts_to_check  # noqa: E402
from coordination.verify.run_facts import EVAL_TOLERANCES  # noqa: E402
from coordination.verify.validator import DEFAULT_ROLLOUT_RATE  # noqa: E402
from trainer.seeded_generation import seeded_generate, token_intervals, uniform  # noqa: E402

CDF_CANDIDATES = (0.0, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 2e-3, 1e-2, 3e-2, 1e-1)
LP_CANDIDATES = (0, 1, 2, 5, 10, 20, 40, 80, 160, 320, 700, 1200)
DEPLOYED = EVAL_TOLERANCES  # (cdf_tolerance, logprob_tolerance_milli) by eval dtype, as `hivetune validate` uses


def build(hidden: int, layers: int):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config

    tok = build_char_tokenizer()
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(tiny_config(tok, hidden_size=hidden, num_hidden_layers=layers))
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(base, lora).eval(), tok


def honest_batch(model, tok, task, start: int, batch: int, tokens: int, temperature: float):
    prompts = [tok(text=[task.prompt(task.sample(0, start + i))])["input_ids"][0] for i in range(batch)]
    seeds = [(start + i).to_bytes(32, "big") for i in range(batch)]
    ids, lps = seeded_generate(model, prompts, seeds, max_new_tokens=tokens, temperature=temperature,
                               eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id or 0)  # fmt: skip
    return list(zip(prompts, seeds, ids, lps, strict=True))


def errors_of(logits, seed, ids, lps, temperature: float) -> tuple[float, int, float]:
    """(worst CDF excursion, worst quantized log-prob difference in milli-nats, mean entropy) of one rollout."""
    low, high = token_intervals(logits, ids, temperature=temperature)
    us = torch.tensor([uniform(seed, t) for t in range(len(ids))], dtype=torch.float64)
    excursion = float(torch.clamp(torch.maximum(low - us, us - high), min=0).max())
    recomputed = torch.log_softmax(logits / temperature, -1).gather(1, torch.tensor(ids)[:, None])[:, 0]
    diff = max(abs(a - b) for a, b in zip(quantize_logprobs(recomputed.tolist()), quantize_logprobs(lps), strict=True))
    logp = torch.log_softmax(logits / temperature, -1)
    return excursion, diff, float(-(logp.exp() * logp).sum(-1).mean())


def detection(n: int, bad: int, rate: float, validators: int = 1) -> float:
    """Probability that at least one of `validators` independent draws at `rate` hits one of `bad` of n records."""
    d = rollouts_to_check(n, rate)
    miss = math.comb(n - bad, d) / math.comb(n, d) if n - bad >= d else 0.0
    return 1 - miss**validators


def cheat_rates(n: int, rate: float) -> dict:
    whole = {"rate_1": detection(n, n, rate), "quorum_3": detection(n, n, rate, 3)}
    cheap = {"rate_1": 1.0, "quorum_3": 1.0}  # checked on every record / on the receipt itself
    return {
        "no_model_freeloader": whole, "fabricated_completions": whole, "cheaper_model": whole,
        "fabricated_rewards": cheap, "overlong_completions": cheap, "inflated_samples": cheap, "replayed_epoch": cheap,
        "replayed_run": cheap, "wrong_prompts": cheap, "not_in_round": cheap, "degenerate_adapter": cheap,
        "out_of_vocab": cheap,
        "fabricate_one_rollout": {"rate_1": detection(n, 1, rate), "quorum_3": detection(n, 1, rate, 3)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=10_240)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--eval-dtype", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--receipt-rollouts", type=int, default=16, help="rollouts per receipt (detection rates)")
    parser.add_argument("--drawn", type=int, default=4, help="rollouts the validator checks in one forward pass")
    parser.add_argument("--sharpen", type=float, default=1.0,
                        help="scale the LM head: peaked next-token distributions, as a trained model has")  # fmt: skip
    args = parser.parse_args()
    from trainer.tasks import get_task

    torch.set_num_threads(1)
    model, tok = build(args.hidden, args.layers)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(args.sharpen)
    task = get_task("arithmetic", digits=2)
    import copy

    validator = copy.deepcopy(model)
    if args.eval_dtype == "bf16":
        validator = validator.to(torch.bfloat16)
    started, excursions, diffs, entropies = time.time(), [], [], []
    for start in range(0, args.rollouts, args.batch):
        batch = honest_batch(model, tok, task, start, min(args.batch, args.rollouts - start), args.tokens,
                             args.temperature)  # fmt: skip
        for i in range(0, len(batch), args.drawn):  # the validator's path: its drawn rollouts in one forward pass
            group = batch[i : i + args.drawn]
            logits = completion_logits_batch(validator, [g[0] for g in group], [g[2] for g in group])
            for (_, seed, ids, lps), rows in zip(group, logits, strict=True):
                e, d, h = errors_of(rows, seed, ids, lps, args.temperature)
                entropies.append(h)
                excursions.append(e)
                diffs.append(d)
    n = len(diffs)
    flagged = {
        f"cdf<={c:g},lp<={m}": sum(e > c or d > m for e, d in zip(excursions, diffs, strict=True))
        for c in CDF_CANDIDATES
        for m in LP_CANDIDATES
    }
    cdf_tol, lp_tol = DEPLOYED[args.eval_dtype]
    result = {
        "eval_dtype": args.eval_dtype, "rollouts": n, "tokens_per_rollout_max": args.tokens,
        "temperature": args.temperature, "sharpen": args.sharpen,
        "model": f"tiny Qwen2 hidden {args.hidden} x {args.layers} + LoRA r8, LM head x{args.sharpen}",
        "mean_token_entropy_nats": sum(entropies) / len(entropies),
        "max_cdf_excursion": max(excursions), "max_logprob_diff_milli": max(diffs),
        "rollouts_with_any_cdf_excursion": sum(e > 0 for e in excursions),
        "rollouts_with_logprob_diff": sum(d > 0 for d in diffs),
        "flagged_by_candidate": flagged,
        "deployed": {"cdf_tolerance": cdf_tol, "logprob_tolerance_milli": lp_tol,
                     "flagged": sum(e > cdf_tol or d > lp_tol for e, d in zip(excursions, diffs, strict=True)),
                     "margin_cdf": cdf_tol / max(excursions) if max(excursions) > 0 else None,  # None: none seen
                     "margin_logprob": lp_tol / max(max(diffs), 1e-9),
                     "per_rollout_fp_95pct_bound": 3 / n},
        "detection_at_default_rate": {"rate": DEFAULT_ROLLOUT_RATE, "rollouts_per_receipt": args.receipt_rollouts,
                                      **cheat_rates(args.receipt_rollouts, DEFAULT_ROLLOUT_RATE)},
        "seconds": time.time() - started,
    }  # fmt: skip
    out = Path(f"outputs/bench/attest_calibration-{args.eval_dtype}-x{args.sharpen:g}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    d = result["deployed"]
    print(
        f"{args.eval_dtype}: {n} honest rollouts; max CDF excursion {result['max_cdf_excursion']:.3g}, max log-prob "
        f"diff {result['max_logprob_diff_milli']} milli; deployed tol ({cdf_tol:g}, {lp_tol}) flags {d['flagged']}"
        f" (margins x{d['margin_cdf'] or float('inf'):.3g} / x{d['margin_logprob']:.3g}); written to {out}"
    )


if __name__ == "__main__":
    main()
