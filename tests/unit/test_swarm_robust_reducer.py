"""The bounded reducer: a rejected part counts with weight 0, the rest is the exact weighted mean."""

import asyncio

import pytest
import torch

from coordination.swarm.robust_averaging import BoundedTensorPartReducer, part_is_acceptable


def reduce_parts(parts, weights, max_norm):
    async def run():
        reducer = BoundedTensorPartReducer(
            (parts[0].shape,),
            len(parts),
            sender_peer_ids=[f"peer{i}" for i in range(len(parts))],
            max_part_norm=max_norm,
        )
        results = await asyncio.gather(
            *(reducer.accumulate_part(i, 0, p, weight=w) for i, (p, w) in enumerate(zip(parts, weights, strict=True)))
        )
        return results

    return asyncio.run(run())


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e6])
def test_bad_sender_is_excluded_from_the_weighted_mean(bad, caplog):
    torch.manual_seed(0)
    good = [torch.randn(6) * 0.1, torch.randn(6) * 0.1]
    evil = torch.full((6,), bad)
    results = reduce_parts([good[0], evil, good[1]], [3.0, 100.0, 5.0], max_norm=1.0)
    expected = (3 * good[0] + 5 * good[1]) / 8
    for r in results:
        torch.testing.assert_close(r, expected)
    assert "rejected gradient part 0 from peer peer1" in caplog.text


def test_all_senders_honest_gives_the_plain_weighted_mean():
    parts = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.5])]
    results = reduce_parts(parts, [1.0, 3.0], max_norm=None)
    torch.testing.assert_close(results[0], torch.tensor([0.25, 0.375]))


def test_everyone_rejected_gives_zeros_not_nan():
    results = reduce_parts([torch.full((3,), float("nan")), torch.full((3,), 1e9)], [1.0, 1.0], max_norm=1.0)
    torch.testing.assert_close(results[0], torch.zeros(3))


def test_part_is_acceptable_bounds():
    assert part_is_acceptable(torch.tensor([0.6, 0.8]), 1.0)[0]  # norm exactly 1.0
    ok, reason = part_is_acceptable(torch.tensor([0.6, 0.81]), 1.0)
    assert not ok and "norm" in reason
    assert not part_is_acceptable(torch.tensor([float("nan")]), None)[0]
    assert part_is_acceptable(torch.tensor([1e30]), None)[0]  # unbounded: finiteness only


def test_parameter_parts_far_from_ours_are_ignored():
    from coordination.swarm.robust_averaging import part_is_close

    ours = torch.ones(100)
    assert part_is_close(ours + 1e-3, ours, max_relative=1.0)[0]  # in sync up to rounding
    ok, reason = part_is_close(ours * 50, ours, max_relative=1.0)
    assert not ok and "away from ours" in reason


def test_state_reducer_averages_only_parameters_close_to_ours():
    async def run():
        ours, close, far = torch.ones(4), torch.ones(4) * 1.1, torch.ones(4) * 1e4
        reducer = BoundedTensorPartReducer(
            ((4,),), 3, sender_peer_ids=["me", "p1", "p2"], max_part_norm=None,
            reference_parts=(ours,), max_relative_deviation=1.0,
        )  # fmt: skip
        return await asyncio.gather(*(reducer.accumulate_part(i, 0, t) for i, t in enumerate((ours, close, far))))

    for result in asyncio.run(run()):
        torch.testing.assert_close(result, torch.ones(4) * 1.05)
