"""Verifiable sampling for a run: rollout seeds from public facts, and the one-forward-pass check.

The sampler itself (batched inverse CDF with a KV cache, temperature/top-k/top-p, EOS) is
`trainer.seeded_generation`: peers train with it (`trainer.seeded_grpo.SeededGenerationMixin`) and
this module only adds what belongs to a run: the seed of a rollout is a hash of
(run id, epoch, peer address, slot, generation), so nobody can choose it, and a validator checks a
whole completion with ONE forward pass (`check_sampled_tokens`) instead of regenerating it:
fabricated or hand-picked completions fail unless every token falls in its uniform's CDF interval.
Boundary ties from floating-point noise are absorbed by `cdf_tolerance`.

    seed = rollout_seed(run_id, epoch, peer, slot, generation)
    ids = sample_completion(model, prompt_ids, seed=seed, max_new_tokens=32, temperature=1.0, eos_token_id=2)
    bad = check_sampled_tokens(model, prompt_ids, ids, seed=seed, temperature=1.0)   # [] when honest
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from eth_utils import to_checksum_address

from trainer.seeded_generation import draw_tokens, mismatched_positions, seeded_generate, token_intervals, uniform

CDF_TOLERANCE = 1e-4

__all__ = [
    "CDF_TOLERANCE",
    "check_sampled_tokens",
    "inverse_cdf",
    "mismatched_positions",
    "rollout_seed",
    "sample_completion",
    "token_interval",
    "uniform",
]


def rollout_seed(run_id: str, epoch: int, peer: str, slot: int, generation: int) -> bytes:
    text = f"hivetune/sample/v1|{run_id}|{epoch}|{to_checksum_address(peer)}|{slot}|{generation}"
    return hashlib.sha256(text.encode()).digest()


def inverse_cdf(logits_row, u: float, temperature: float) -> int:
    """The token drawn by uniform `u` from softmax(logits / temperature)."""
    return int(draw_tokens(logits_row.unsqueeze(0), [u], temperature=temperature)[0])


def token_interval(logits_row, token: int, temperature: float) -> tuple[float, float]:
    """[low, high) of the uniforms that draw `token`."""
    low, high = token_intervals(logits_row.unsqueeze(0), [token], temperature=temperature)
    return float(low[0]), float(high[0])


def sample_completion(
    model, prompt_ids: Sequence[int], *, seed: bytes, max_new_tokens: int, temperature: float,
    eos_token_id: int | None, top_k: int = 0, top_p: float = 1.0,
) -> list[int]:  # fmt: skip
    """One seeded completion (the training sampler on a batch of one); stops at EOS."""
    ids, _ = seeded_generate(model, [list(prompt_ids)], [seed], max_new_tokens=max_new_tokens, temperature=temperature,
                             eos_token_ids=[] if eos_token_id is None else [eos_token_id], top_k=top_k,
                             top_p=top_p)  # fmt: skip
    return ids[0]


def check_sampled_tokens(
    model, prompt_ids, completion_ids, *, seed: bytes, temperature: float, cdf_tolerance: float = CDF_TOLERANCE,
    top_k: int = 0, top_p: float = 1.0,
) -> list[int]:  # fmt: skip
    """One forward pass; the positions where `completion_ids` disagree with seeded sampling."""
    from coordination.attest.logprobs import completion_logits

    if not completion_ids:
        return []
    logits = completion_logits(model, list(prompt_ids), list(completion_ids))
    return mismatched_positions(logits, list(completion_ids), seed=seed, temperature=temperature, top_k=top_k,
                                top_p=top_p, cdf_tolerance=cdf_tolerance)  # fmt: skip
