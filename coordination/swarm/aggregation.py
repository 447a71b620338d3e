"""Deterministic, Byzantine-robust aggregation of the gradient contributions of one averaging round.

Every function here is *coordinate-wise* and *order-independent*, so the result does not depend on
how hivemind splits the vector into parts, which peer reduces which part, or the order in which
parts arrive: anyone holding the round's contributions recomputes it bit for bit
(`coordination.swarm.update_check`).

Inputs are wire-precision vectors (fp16 values held in fp32, or fp32 for `compression: none`) and
integer weights. Sums are taken in float64, where the products and sums of fp16 values and integer
weights up to 2**20 are exact, so summation order cannot change the result; one division rounds.

Methods (`averaging.aggregator` in the run spec):

- ``mean``: the weight-weighted mean. Bound: each coordinate is first clamped to
  ``[-value_bound, value_bound]`` (an honest, norm-clipped gradient never exceeds its clip norm in any
  coordinate), and each weight to ``max_weight`` (the sender's assignment), so f faulty senders move
  any coordinate by at most ``f * max_weight * 2 * value_bound / W`` where W is the total weight.
- ``trimmed_mean`` (default): per coordinate, drop the ``t`` smallest and ``t`` largest finite
  values and average the rest, with ``t = min(ceil(trim_fraction * n), (n - 1) // 2)``.
  Bound: with at most ``t`` faulty senders, every coordinate of the result lies within
  ``[min, max]`` of the honest senders' values of that coordinate, whatever the faulty ones send.

Non-finite values and senders with a zero, negative or non-finite weight are excluded (coordinate by
coordinate for non-finite values), never propagated.

    result = aggregate(parts, weights, method="trimmed_mean", trim_fraction=0.25, value_bound=1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

AGGREGATORS = ("mean", "trimmed_mean")


def clamp_weight(claimed: float, max_weight: float) -> float:
    """A sender's weight in the round: its claim clamped to `max_weight`; 0 (excluded) when not finite or <= 0."""
    try:
        claimed = float(claimed)
    except (TypeError, ValueError):
        return 0.0
    if not math.isfinite(claimed) or claimed <= 0:
        return 0.0
    return float(min(claimed, max_weight))


def trim_count(n: int, trim_fraction: float) -> int:
    """How many values `trimmed_mean` drops at each end of n finite values."""
    if n <= 2:
        return 0
    return min(math.ceil(trim_fraction * n), (n - 1) // 2)


def aggregate(
    parts: Sequence[torch.Tensor],
    weights: Sequence[float],
    *,
    method: str = "trimmed_mean",
    trim_fraction: float = 0.25,
    value_bound: float | None = None,
) -> torch.Tensor:
    """Aggregate same-shaped `parts` (one per sender) into one float32 tensor (see module docstring)."""
    if method not in AGGREGATORS:
        raise ValueError(f"aggregator {method!r}: use one of {AGGREGATORS}")
    if len(parts) != len(weights) or not parts:
        raise ValueError(f"need one weight per part, got {len(parts)} parts and {len(weights)} weights")
    keep = [i for i, w in enumerate(weights) if w > 0]
    shape = parts[0].shape
    if not keep:
        return torch.zeros(shape, dtype=torch.float32)
    stacked = torch.stack([parts[i].detach().reshape(-1).to(torch.float64) for i in keep])
    finite = torch.isfinite(stacked)
    if value_bound is not None:
        stacked = stacked.clamp(-value_bound, value_bound)
    stacked = torch.where(finite, stacked, torch.zeros_like(stacked))
    if method == "mean":
        result = _weighted_mean(stacked, finite, [weights[i] for i in keep])
    else:
        result = _trimmed_mean(stacked, finite, trim_fraction)
    return result.to(torch.float32).reshape(shape)


def _weighted_mean(values: torch.Tensor, finite: torch.Tensor, weights: list[float]) -> torch.Tensor:
    w = torch.tensor(weights, dtype=torch.float64).unsqueeze(1) * finite.to(torch.float64)
    total = w.sum(dim=0)
    numerator = torch.mul(values, w).sum(dim=0)
    return torch.where(total > 0, numerator / torch.where(total > 0, total, torch.ones_like(total)), total)


def _trimmed_mean(values: torch.Tensor, finite: torch.Tensor, trim_fraction: float) -> torch.Tensor:
    n = values.shape[0]
    big = torch.full_like(values, float("inf"))
    ordered, _ = torch.sort(torch.where(finite, values, big), dim=0)  # non-finite go last
    count = finite.sum(dim=0)  # finite values per coordinate
    trim = _trim_per_coordinate(count, trim_fraction)
    rank = torch.arange(n).unsqueeze(1)
    keep = (rank >= trim) & (rank < count - trim)
    kept = keep.sum(dim=0).to(torch.float64)
    total = torch.where(keep, ordered, torch.zeros_like(ordered)).sum(dim=0)
    return torch.where(kept > 0, total / torch.where(kept > 0, kept, torch.ones_like(kept)), torch.zeros_like(kept))


def _trim_per_coordinate(count: torch.Tensor, trim_fraction: float) -> torch.Tensor:
    ceil = torch.ceil(count.to(torch.float64) * trim_fraction).to(torch.int64)
    trim = torch.minimum(ceil, torch.div(count - 1, 2, rounding_mode="floor"))
    return torch.where(count <= 2, torch.zeros_like(trim), trim)


def to_wire(tensor: torch.Tensor, compression: str) -> torch.Tensor:
    """`tensor` rounded to the wire format (fp16 | none), held in float32: what every peer of a round applies."""
    if compression == "fp16":
        fp16_max = torch.finfo(torch.float16).max
        return tensor.detach().float().clamp(-fp16_max, fp16_max).to(torch.float16).to(torch.float32)
    if compression == "none":
        return tensor.detach().to(torch.float32).clone()
    raise ValueError(f"compression {compression!r} is not coordinate-wise: use fp16 or none")
