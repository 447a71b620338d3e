"""Verifiable sampling: rollout tokens drawn by inverse CDF from public, seeded uniforms.

Token t of a rollout is the smallest token whose cumulative probability (softmax of the
logits / temperature, in float64) reaches `u_t`, where `u_t` is a hash of
(run id, epoch, peer, slot, generation, t). A validator therefore checks a whole completion
with ONE forward pass (`check_sampled_tokens`) instead of regenerating it: fabricated or
hand-picked completions fail unless every token falls in its uniform's CDF interval.
Boundary ties from floating-point noise are absorbed by `cdf_tolerance`.

    seed = rollout_seed(run_id, epoch, peer, slot, generation)
    ids = sample_completion(model, prompt_ids, seed=seed, max_new_tokens=32, temperature=1.0, eos_token_id=2)
    bad = check_sampled_tokens(model, prompt_ids, ids, seed=seed, temperature=1.0)   # [] when honest
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from eth_utils import to_checksum_address

CDF_TOLERANCE = 1e-4


def rollout_seed(run_id: str, epoch: int, peer: str, slot: int, generation: int) -> bytes:
    text = f"hivetune/sample/v1|{run_id}|{epoch}|{to_checksum_address(peer)}|{slot}|{generation}"
    return hashlib.sha256(text.encode()).digest()


def uniform(seed: bytes, t: int) -> float:
    """The public uniform in [0, 1) for token position t of the rollout with `seed` (53 bits)."""
    block = hashlib.sha256(seed + t.to_bytes(8, "big")).digest()
    return (int.from_bytes(block[:8], "big") >> 11) / 2**53


def _cdf(logits_row, temperature: float):
    import torch

    return torch.cumsum(torch.softmax(logits_row.double() / temperature, dim=-1), dim=-1)


def inverse_cdf(logits_row, u: float, temperature: float) -> int:
    """The token drawn by uniform `u` from softmax(logits / temperature)."""
    import torch

    cdf = _cdf(logits_row, temperature)
    return min(int(torch.searchsorted(cdf, torch.tensor([u], dtype=cdf.dtype)).item()), cdf.numel() - 1)


def token_interval(logits_row, token: int, temperature: float) -> tuple[float, float]:
    """[low, high) of the uniforms that draw `token`."""
    cdf = _cdf(logits_row, temperature)
    return (float(cdf[token - 1]) if token > 0 else 0.0), float(cdf[token])


def sample_completion(
    model, prompt_ids: Sequence[int], *, seed: bytes, max_new_tokens: int, temperature: float, eos_token_id: int | None
) -> list[int]:
    """Generate with a KV cache, drawing token t by inverse CDF at `uniform(seed, t)`; stops at EOS."""
    import torch

    model.eval()
    out: list[int] = []
    with torch.no_grad():
        result = model(input_ids=torch.tensor([list(prompt_ids)], device=model.device), use_cache=True)
        for t in range(max_new_tokens):
            token = inverse_cdf(result.logits[0, -1].cpu(), uniform(seed, t), temperature)
            out.append(token)
            if token == eos_token_id:
                break
            step = torch.tensor([[token]], device=model.device)
            result = _next_step(model, step, result)
    return out


def _next_step(model, step, previous):
    """One incremental forward with the KV cache (transformers 5 names it `cache`, 4.x `past_key_values`)."""
    if hasattr(previous, "cache"):
        return model(input_ids=step, cache=previous.cache, use_cache=True)
    return model(input_ids=step, past_key_values=previous.past_key_values, use_cache=True)


def mismatched_positions(
    logits, completion_ids: Sequence[int], *, seed: bytes, temperature: float, cdf_tolerance: float = CDF_TOLERANCE
) -> list[int]:
    """Positions whose token is not the inverse-CDF draw of its uniform (within the tolerance)."""
    bad = []
    for t, token in enumerate(completion_ids):
        low, high = token_interval(logits[t], int(token), temperature)
        if not (low - cdf_tolerance <= uniform(seed, t) < high + cdf_tolerance):
            bad.append(t)
    return bad


def check_sampled_tokens(
    model, prompt_ids, completion_ids, *, seed: bytes, temperature: float, cdf_tolerance: float = CDF_TOLERANCE
) -> list[int]:
    """One forward pass; the positions where `completion_ids` disagree with seeded sampling."""
    from coordination.attest.logprobs import completion_logits

    if not completion_ids:
        return []
    logits = completion_logits(model, list(prompt_ids), list(completion_ids))
    return mismatched_positions(
        logits, completion_ids, seed=seed, temperature=temperature, cdf_tolerance=cdf_tolerance
    )
