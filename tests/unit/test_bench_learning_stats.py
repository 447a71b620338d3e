"""The statistics of bench/learning.py and trainer.eval.pass_at_k, checked against hand computation."""

import importlib.util
import itertools
import math
import sys
from pathlib import Path

import pytest

from trainer.eval import pass_at_k

spec = importlib.util.spec_from_file_location("bench_learning", Path(__file__).parents[2] / "bench" / "learning.py")
learning = importlib.util.module_from_spec(spec)
sys.modules["bench_learning"] = learning  # dataclasses resolve annotations through sys.modules
spec.loader.exec_module(learning)


@pytest.mark.parametrize("n, c, k", [(8, 0, 1), (8, 3, 1), (8, 3, 4), (8, 7, 2), (10, 1, 10), (5, 5, 3)])
def test_pass_at_k_is_the_fraction_of_k_subsets_with_a_correct_sample(n, c, k):
    subsets = list(itertools.combinations([1] * c + [0] * (n - c), k))
    assert math.isclose(pass_at_k(n, c, k), sum(any(s) for s in subsets) / len(subsets))


def test_bootstrap_ci_brackets_the_mean_and_collapses_on_constants():
    mean, lo, hi = learning.bootstrap([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]], reps=500)
    assert mean == pytest.approx(0.625) and lo <= mean <= hi and hi - lo > 0
    assert learning.bootstrap([[0.5] * 7, [0.5] * 7], reps=50) == (0.5, 0.5, 0.5)


def test_summary_differences_are_paired_by_problem_and_seed():
    def score(greedy, sampled):
        return {"greedy": greedy, "sampled_correct": sampled}

    runs = [
        {
            "scores": {
                "warm start": score([0, 0], [0, 1]),
                "continued SFT": score([0, 1], [2, 1]),
                "GRPO outcome": score([1, 1], [4, 3]),
            }
        },
        {
            "scores": {
                "warm start": score([0, 0], [0, 0]),
                "continued SFT": score([1, 0], [1, 1]),
                "GRPO outcome": score([1, 1], [4, 4]),
            }
        },
    ]
    table = learning.summarize(runs, k=4)
    grpo = table["GRPO outcome"]
    assert grpo["greedy pass@1"]["mean"] == 1.0
    assert grpo["greedy pass@1"]["minus_continued_sft"]["mean"] == pytest.approx(0.5)
    assert grpo["sampled pass@1"]["mean"] == pytest.approx(15 / 16)
    assert grpo["pass@k"]["gain_over_warm_start"] == pytest.approx(0.75)  # (1 - 0.5) and (1 - 0) over 2 seeds
    assert grpo["greedy pass@1"]["seed_spread"] == 0.0
