"""Seeded, verifiable generation: a batched inverse-CDF sampler with a KV cache.

Token t of a completion is drawn from softmax(logits / temperature) (after the top-k / top-p
filter, renormalised; float64) as the smallest token whose cumulative probability exceeds
`u_t * total`, where `u_t = uniform(seed, t)` is a public hash of the rollout's seed. Given the
seed, the model and the prompt, every token is determined: anyone can check a completion with ONE
forward pass (`token_intervals` on its logits) instead of regenerating it.

This module is the math and the generation loop; it knows nothing of runs, peers or chains (the
seed is an opaque 32-byte string, `coordination.attest.seeded_sampling.rollout_seed` makes it).

    seeds = [bytes(32), b"\\x01" * 32]
    ids, logprobs = seeded_generate(model, [[5, 6, 7], [5, 9]], seeds, max_new_tokens=32, temperature=0.7,
                                    eos_token_ids=[2], pad_token_id=0)
    # ids[i]: the sampled token ids (ending with EOS, or max_new_tokens long);
    # logprobs[i]: log softmax(logits / temperature)[token], what GRPO trains on and validators recompute

Choices: uniforms have 53 bits (one SHA-256 per token); the CDF is in token-id order so masked
tokens (top-k / top-p) have empty intervals; a row stops at its first EOS; log-probs are over the
full vocabulary at the sampling temperature (TRL's `_get_per_token_logps` convention); the model
runs in eval mode (no dropout) during generation and is put back in its previous mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def uniform(seed: bytes, t: int) -> float:
    """The public uniform in [0, 1) for token position t of the rollout with `seed` (53 bits)."""
    block = hashlib.sha256(seed + t.to_bytes(8, "big")).digest()
    return (int.from_bytes(block[:8], "big") >> 11) / 2**53


def prompt_token_ids(tokenizer, prompt: str) -> list[int]:
    """A text prompt's ids exactly as TRL's GRPOTrainer tokenizes it (`processing_class(text=...)`)."""
    return list(tokenizer(text=[prompt])["input_ids"][0])


def filtered_probs(logits: torch.Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """float64 probabilities (rows of `logits`) after temperature, top-k and top-p, NOT renormalised."""
    if temperature <= 0:
        raise ValueError(f"temperature={temperature}: seeded sampling needs temperature > 0")
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    if top_k and 0 < top_k < probs.shape[-1]:
        kth = torch.topk(probs, top_k, dim=-1).values[..., -1:]
        probs = torch.where(probs >= kth, probs, torch.zeros_like(probs))
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs  # mass strictly above each token
        keep_sorted = before < top_p * sorted_probs.sum(-1, keepdim=True)
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = torch.where(keep, probs, torch.zeros_like(probs))
    return probs


def draw_tokens(logits: torch.Tensor, us: Sequence[float], *, temperature: float, top_k: int = 0,
                top_p: float = 1.0) -> torch.Tensor:  # fmt: skip
    """The token of each row of `logits` (B, V) drawn by its uniform in `us` (B,)."""
    cdf = torch.cumsum(filtered_probs(logits, temperature, top_k, top_p), dim=-1)
    u = torch.tensor(list(us), dtype=cdf.dtype, device=cdf.device).unsqueeze(-1) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=cdf.shape[-1] - 1)


def token_intervals(logits: torch.Tensor, tokens: Sequence[int], *, temperature: float, top_k: int = 0,
                    top_p: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """[low, high) of the (renormalised) uniforms that draw `tokens[t]` from `logits[t]`, float64 (T,)."""
    probs = filtered_probs(logits, temperature, top_k, top_p)
    cdf = torch.cumsum(probs, dim=-1) / probs.sum(-1, keepdim=True)
    index = torch.as_tensor(list(tokens), dtype=torch.long, device=cdf.device).unsqueeze(-1)
    high = cdf.gather(-1, index).squeeze(-1)
    low = high - (probs / probs.sum(-1, keepdim=True)).gather(-1, index).squeeze(-1)
    return low, high


def mismatched_positions(logits, tokens: Sequence[int], *, seed: bytes, temperature: float, top_k: int = 0,
                         top_p: float = 1.0, cdf_tolerance: float = 1e-4) -> list[int]:  # fmt: skip
    """Positions whose token is not the seeded draw of its uniform (within `cdf_tolerance` of the interval)."""
    if not len(tokens):
        return []
    low, high = token_intervals(logits, tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    us = torch.tensor([uniform(seed, t) for t in range(len(tokens))], dtype=low.dtype, device=low.device)
    ok = (low - cdf_tolerance <= us) & (us < high + cdf_tolerance) & (high > low)
    return [int(t) for t in torch.nonzero(~ok).flatten().tolist()]


def _left_pad(prompts: Sequence[Sequence[int]], pad_token_id: int, device):
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def _forward(model, ids, mask, cache):
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -ids.shape[1] :]
    kwargs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions, "use_cache": True}
    if cache is not None:  # transformers 5 names the KV cache `cache`, 4.x `past_key_values`
        kwargs[cache[0]] = cache[1]
    out = model(**kwargs)
    name = "cache" if getattr(out, "cache", None) is not None else "past_key_values"
    return out.logits[:, -1, :], (name, getattr(out, name))


@torch.no_grad()
def seeded_generate(model, prompts: Sequence[Sequence[int]], seeds: Sequence[bytes], *, max_new_tokens: int,
                    temperature: float, eos_token_ids: Sequence[int] = (), pad_token_id: int = 0, top_k: int = 0,
                    top_p: float = 1.0) -> tuple[list[list[int]], list[list[float]]]:  # fmt: skip
    """(completion ids, their log-probs) of every prompt, drawn with its seed (module docstring)."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts and {len(seeds)} seeds: pass one seed per prompt")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt: every completion needs at least one conditioning token")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        # autocast off: sampling runs in the weights' own dtype, as the validators' recomputation does
        with torch.autocast(device_type=device.type, enabled=False):
            ids, mask = _left_pad(prompts, pad_token_id, device)
            logits, cache = _forward(model, ids, mask, None)
            eos = torch.tensor(list(eos_token_ids) or [-1], device=device)
            out = torch.zeros((len(prompts), 0), dtype=torch.long, device=device)
            logps = torch.zeros((len(prompts), 0), dtype=torch.float64, device=device)
            done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
            for t in range(max_new_tokens):
                tokens = draw_tokens(logits, [uniform(s, t) for s in seeds], temperature=temperature,
                                     top_k=top_k, top_p=top_p)  # fmt: skip
                lp = torch.log_softmax(logits.double() / temperature, dim=-1).gather(-1, tokens.unsqueeze(-1))
                out, logps = torch.cat([out, tokens.unsqueeze(-1)], -1), torch.cat([logps, lp], -1)
                done = done | torch.isin(tokens, eos)
                if bool(done.all()) or t == max_new_tokens - 1:
                    break
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], -1)
                logits, cache = _forward(model, tokens.unsqueeze(-1), mask, cache)
    finally:
        model.train(was_training)
    return _trim(out.cpu(), logps.cpu(), set(eos_token_ids))


def _trim(out: torch.Tensor, logps: torch.Tensor, eos: set[int]) -> tuple[list[list[int]], list[list[float]]]:
    """Each row up to and including its first EOS."""
    ids_out, lp_out = [], []
    for row, lp in zip(out.tolist(), logps.tolist(), strict=True):
        end = next((i + 1 for i, tok in enumerate(row) if tok in eos), len(row))
        ids_out.append(row[:end])
        lp_out.append(lp[:end])
    return ids_out, lp_out
