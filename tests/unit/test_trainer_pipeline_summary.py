"""The single-peer pipeline's bookkeeping: stage times, gains, and mean/spread over seeds."""

import statistics

import pytest

from trainer.pipeline import PipelineConfig, _summary, aggregate, plot_summaries


def fake_eval(accuracy):
    return {"task": "arithmetic:{}", "accuracy": accuracy, "format_rate": 1.0, "step_credit": accuracy, "examples": []}


def test_summary_times_and_gain():
    clock = {"start": 10.0, "sft": 40.0, "eval0": 42.0, "grpo": 100.0, "eval1": 103.0}
    summary = _summary(PipelineConfig(seed=3), fake_eval(0.4), fake_eval(0.75), clock, [{"step": 10, "reward": 0.5}])
    assert summary["seconds"] == {"sft": 30.0, "eval0": 2.0, "grpo": 58.0, "eval1": 3.0}
    assert summary["total_seconds"] == 93.0 and summary["gain"] == pytest.approx(0.35) and summary["seed"] == 3
    assert summary["reward_curve"] == [{"step": 10, "reward": 0.5, "zero_std": None}]


def test_aggregate_is_mean_and_sample_std(tmp_path):
    clock = {"start": 0.0, "sft": 1.0, "eval0": 2.0, "grpo": 3.0, "eval1": 4.0}
    runs = [
        _summary(PipelineConfig(seed=s), fake_eval(b), fake_eval(a), clock, [{"step": 1, "reward": 0.1}])
        for s, b, a in ((0, 0.4, 0.8), (1, 0.3, 0.9), (2, 0.35, 0.7))
    ]
    result = aggregate(runs)
    assert result["before"]["mean"] == pytest.approx(0.35)
    assert result["gain"]["values"] == pytest.approx([0.4, 0.6, 0.35])
    assert result["gain"]["std"] == pytest.approx(statistics.stdev([0.4, 0.6, 0.35]))
    assert result["after"]["min"] == 0.7 and result["after"]["max"] == 0.9
    assert plot_summaries(runs, tmp_path / "p.png").stat().st_size > 1000
