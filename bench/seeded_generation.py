"""Throughput of the seeded, verifiable sampler (trainer.seeded_generation) vs TRL's generation (HF `generate`).

    python bench/seeded_generation.py                       # tiny Qwen2 (hidden 128, 4 layers), batch 32, 64 tokens
    python bench/seeded_generation.py --batch 16 --tokens 32 --repeats 5 --model path/to/model

Both sides sample the same batch of prompts with the same model at the same temperature, generating exactly
`--tokens` new tokens per row (EOS disabled, so both do the same work); TRL's regular generation path is
`model.generate(input_ids, attention_mask, generation_config)` with do_sample=True, which is what is timed.
Prints the median tokens/s of each and the ratio (goal >= 0.9x); writes outputs/bench/seeded_generation.json.

Measured (2026-12-02, shared 2-core CPU, tiny 128x4, batch 32, 64 tokens): seeded/TRL = 1.10x median of 7 pairs
(range 0.93-1.29x).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from trainer.seeded_generation import seeded_generate  # noqa: E402

OUT = Path("outputs/bench/seeded_generation.json")


def load(model_path: str | None):
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, load_model_and_tokenizer, tiny_config

    if model_path:
        return load_model_and_tokenizer(model_path)
    tok = build_char_tokenizer()
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(tiny_config(tok, hidden_size=128, num_hidden_layers=4)).eval(), tok


def prompts_of(tok, batch: int) -> list[list[int]]:
    return [tok(text=[f"Q:{10 + i % 80}+{(7 * i) % 90}\n"])["input_ids"][0] for i in range(batch)]


def time_seeded(model, tok, prompts, tokens, temperature) -> float:
    seeds = [bytes([i % 256]) * 32 for i in range(len(prompts))]
    start = time.perf_counter()
    ids, _ = seeded_generate(model, prompts, seeds, max_new_tokens=tokens, temperature=temperature,
                             eos_token_ids=[], pad_token_id=tok.pad_token_id or 0)  # fmt: skip
    assert all(len(row) == tokens for row in ids)
    return time.perf_counter() - start


def time_hf(model, tok, prompts, tokens, temperature) -> float:
    from transformers import GenerationConfig

    width = max(len(p) for p in prompts)
    pad = tok.pad_token_id or 0
    ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    config = GenerationConfig(do_sample=True, temperature=temperature, top_k=0, top_p=1.0, max_new_tokens=tokens,
                              min_new_tokens=tokens, pad_token_id=pad, eos_token_id=None)  # fmt: skip
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
    assert out.shape[1] - width == tokens
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a model dir or HF id (default: the tiny Qwen2)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load(args.model)
    prompts = prompts_of(tok, args.batch)
    time_seeded(model, tok, prompts, 4, args.temperature), time_hf(model, tok, prompts, 4, args.temperature)  # warm up
    seeded, hf = [], []
    for _ in range(args.repeats):  # interleaved, so load on the machine hits both alike
        seeded.append(time_seeded(model, tok, prompts, args.tokens, args.temperature))
        hf.append(time_hf(model, tok, prompts, args.tokens, args.temperature))
    work = args.batch * args.tokens
    result = {
        "batch": args.batch, "tokens": args.tokens, "repeats": args.repeats, "model": args.model or "tiny-128x4",
        "seeded_tokens_per_s": work / statistics.median(seeded),
        "trl_generate_tokens_per_s": work / statistics.median(hf),
        "ratios": sorted(h / s for s, h in zip(seeded, hf, strict=True)),
    }  # fmt: skip
    result["ratio_median"] = statistics.median(result["ratios"])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(
        f"seeded {result['seeded_tokens_per_s']:.0f} tok/s, TRL generate {result['trl_generate_tokens_per_s']:.0f} "
        f"tok/s: seeded/TRL = {result['ratio_median']:.2f}x (median of {args.repeats} interleaved pairs; goal >= 0.9x)"
    )


if __name__ == "__main__":
    main()
