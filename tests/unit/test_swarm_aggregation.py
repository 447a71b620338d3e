"""The aggregation rules: the hand-computed math, order independence, and the documented robustness bounds."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from coordination.swarm.aggregation import aggregate, clamp_weight, to_wire, trim_count


def test_weighted_mean_is_the_hand_computed_mean():
    a, b = torch.tensor([1.0, 2.0, -4.0]), torch.tensor([3.0, 0.0, 4.0])
    out = aggregate([a, b], [1.0, 3.0], method="mean")
    assert torch.equal(out, torch.tensor([(1 + 9) / 4, 2 / 4, (-4 + 12) / 4]))


def test_trimmed_mean_drops_the_extremes_per_coordinate():
    parts = [torch.tensor([1.0, 10.0]), torch.tensor([2.0, -50.0]), torch.tensor([100.0, 20.0])]
    assert torch.equal(aggregate(parts, [1, 1, 1], method="trimmed_mean"), torch.tensor([2.0, 10.0]))  # medians


def test_trim_counts():
    assert [trim_count(n, 0.25) for n in (1, 2, 3, 4, 5, 8, 9)] == [0, 0, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("claimed", [0, -1.0, float("nan"), float("inf"), "x", None])
def test_bad_weights_are_refused(claimed):
    assert clamp_weight(claimed, 64) == 0.0


def test_weight_is_clamped_to_the_assignment():
    assert clamp_weight(1e9, 64) == 64.0 and clamp_weight(12, 64) == 12.0


def test_non_finite_values_are_excluded_per_coordinate():
    a, b = torch.tensor([float("nan"), 1.0]), torch.tensor([2.0, float("inf")])
    for method in ("mean", "trimmed_mean"):
        assert torch.equal(aggregate([a, b], [1, 1], method=method), torch.tensor([2.0, 1.0]))


def test_all_excluded_gives_zeros_not_nan():
    out = aggregate([torch.tensor([float("nan")])], [1.0], method="mean")
    assert torch.equal(out, torch.zeros(1))
    assert torch.equal(aggregate([torch.ones(2)], [0.0]), torch.zeros(2))


fp16_vectors = st.lists(st.lists(st.floats(-1, 1, width=16), min_size=6, max_size=6), min_size=2, max_size=6)


@settings(max_examples=60, deadline=None)
@given(fp16_vectors, st.sampled_from(["mean", "trimmed_mean"]), st.randoms())
def test_result_does_not_depend_on_sender_order(rows, method, rnd):
    parts = [torch.tensor(r, dtype=torch.float32) for r in rows]
    weights = [float(1 + i % 5) for i in range(len(parts))]
    order = list(range(len(parts)))
    rnd.shuffle(order)
    a = aggregate(parts, weights, method=method)
    b = aggregate([parts[i] for i in order], [weights[i] for i in order], method=method)
    assert a.numpy().tobytes() == b.numpy().tobytes()


@settings(max_examples=60, deadline=None)
@given(
    fp16_vectors,
    st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(float("nan")), st.just(float("inf"))), min_size=6, max_size=6),
)
def test_trimmed_mean_stays_within_the_honest_range_with_t_attackers(rows, bad):
    honest = [torch.tensor(r, dtype=torch.float32) for r in rows]
    n = len(honest) + 1
    if trim_count(n, 0.25) < 1:
        return
    out = aggregate([*honest, torch.tensor(bad, dtype=torch.float32)], [1.0] * n, method="trimmed_mean")
    stacked = torch.stack(honest)
    assert bool((out >= stacked.min(0).values - 1e-6).all() and (out <= stacked.max(0).values + 1e-6).all())


def test_mean_bound_with_value_clamp():
    honest = [torch.full((4,), 0.5)] * 3
    bad = torch.full((4,), 1e6)
    out = aggregate([*honest, bad], [64, 64, 64, 64], method="mean", value_bound=1.0)
    # one attacker of weight 64 among W=256 moves a coordinate by at most 64 * 2 * 1.0 / 256
    assert float((out - 0.5).abs().max()) <= 64 * 2 / 256 + 1e-9


def test_to_wire_matches_hivemind_fp16_compression():
    from hivemind.compression import deserialize_torch_tensor, serialize_torch_tensor
    from hivemind.proto import runtime_pb2

    x = torch.randn(1000) * 10
    x[0] = 1e6
    ours = to_wire(x, "fp16")
    theirs = deserialize_torch_tensor(serialize_torch_tensor(x, runtime_pb2.CompressionType.FLOAT16))
    assert ours.numpy().tobytes() == theirs.numpy().tobytes()
    assert math.isfinite(float(ours[0]))
    with pytest.raises(ValueError, match="coordinate-wise"):
        to_wire(x, "8bit")
