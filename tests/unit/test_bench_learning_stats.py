"""The statistics and arms of bench/learning.py and trainer.eval.pass_at_k, checked against hand computation."""

import importlib.util
import itertools
import json
import math
import sys
from pathlib import Path

import pytest

from trainer.eval import pass_at_k
from trainer.models import library_versions

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


def test_seed_and_problem_bootstrap_counts_the_variance_between_seeds():
    # two seeds that disagree on every problem: each problem's seed average is 0.5, so the problem bootstrap sees no
    # spread; resampling seeds draws both seeds from one of them a quarter of the time each (mean 0 or 1)
    disagree = [[0.0] * 40, [1.0] * 40]
    assert learning.bootstrap(disagree, reps=400) == (0.5, 0.5, 0.5)
    assert learning.bootstrap_seeds_and_problems(disagree, reps=400) == (0.5, 0.0, 1.0)
    # seeds that agree: no seed variance to add, and the CI is the problem bootstrap's up to Monte Carlo noise
    agree = [[1.0] * 30 + [0.0] * 70] * 4
    mean, lo, hi = learning.bootstrap_seeds_and_problems(agree, reps=2000)
    _, plo, phi = learning.bootstrap(agree, reps=2000)
    assert mean == pytest.approx(0.3) and lo == pytest.approx(plo, abs=0.02) and hi == pytest.approx(phi, abs=0.02)
    assert learning.bootstrap_seeds_and_problems([[0.25] * 9] * 3, reps=50) == (0.25, 0.25, 0.25)


def test_summary_differences_are_paired_by_problem_and_seed():
    def score(greedy, sampled):
        return {"greedy": greedy, "sampled_correct": sampled}

    runs = [
        {
            "scores": {
                "warm start": score([0, 0], [0, 1]),
                learning.BASELINE: score([0, 1], [2, 1]),
                "GRPO outcome": score([1, 1], [4, 3]),
            }
        },
        {
            "scores": {
                "warm start": score([0, 0], [0, 0]),
                learning.BASELINE: score([1, 0], [1, 1]),
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
    # the baseline's greedy differs between the seeds ([0, 1] and [1, 0]) and GRPO's does not: the seed-resampled CI
    # of the difference holds the problem bootstrap's
    diff = grpo["greedy pass@1"]["minus_continued_sft"]
    lo, hi = diff["ci95_seeds_and_problems"]
    assert lo <= diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1] <= hi


def test_every_arm_is_paired_against_each_baseline_it_is_compared_to():
    def score(greedy, sampled):
        return {"greedy": greedy, "sampled_correct": sampled}

    scores = {
        "warm start": score([0, 0], [0, 0]),
        learning.BASELINE: score([0, 1], [1, 1]),
        learning.ORACLE: score([1, 1], [2, 2]),
        "rejection FT": score([0, 0], [1, 0]),
        "GRPO outcome": score([1, 0], [2, 1]),
    }
    table = learning.summarize([{"scores": scores}], k=2)
    grpo = table["GRPO outcome"]["greedy pass@1"]["minus"]
    assert grpo[learning.BASELINE]["mean"] == pytest.approx(0.0)
    assert grpo["rejection FT"]["mean"] == pytest.approx(0.5)
    assert grpo[learning.ORACLE]["mean"] == pytest.approx(-0.5)
    assert learning.BASELINE not in table[learning.BASELINE]["greedy pass@1"]["minus"]
    assert table["GRPO outcome"]["greedy pass@1"]["minus_continued_sft"] == grpo[learning.BASELINE]


@pytest.mark.parametrize("warm_traces, distinct", [(None, 12), (5, 5)])
def test_same_data_baseline_is_exactly_the_warm_start_training_data(monkeypatch, tmp_path, warm_traces, distinct):
    """`continued SFT (same data)` must re-use the traces `ensure_warm_start` trained the warm start on (all of
    them, and only them when `--warm_traces` limits the teacher to fewer traces than the warm start's examples)."""
    import trainer.sft as sft
    from trainer.models import load_tokenizer
    from trainer.tasks import get_task

    monkeypatch.setenv("HIVETUNE_HOME", str(tmp_path / "home"))
    seen = {}

    class Stop(Exception):
        pass

    def capture(model, tokenizer, task, args, *, data_seed, n_samples, teacher_flaw_rate=0.0, **kwargs):
        seen.update(data_seed=data_seed, n=n_samples, flaw=teacher_flaw_rate, tokenizer=tokenizer, task=task)
        raise Stop

    monkeypatch.setattr(sft, "train_sft", capture)
    setting = learning.Setting(
        **{**learning.asdict(learning.SETTINGS["tiny"]), "warm_steps": 3, "warm_batch": 4, "warm_traces": warm_traces}
    )
    task = get_task(setting.task, **setting.task_params)
    with pytest.raises(Stop):
        learning.ensure_seed_warm_start(setting, tmp_path / "warm", seed=2)
    trained_on = sft.sft_dataset(seen["task"], seed=seen["data_seed"], n=seen["n"], teacher_flaw_rate=seen["flaw"],
                                 tokenizer=seen["tokenizer"])  # fmt: skip
    rows = learning.warm_start_rows(setting, task, load_tokenizer("tiny"), seed=2)
    assert rows["prompt"] == list(trained_on["prompt"]) and rows["completion"] == list(trained_on["completion"])
    assert seen["n"] == len(rows["prompt"]) == distinct


def test_seeds_run_apart_merge_into_the_table_of_all_seeds_and_refuse_another_experiment(tmp_path, monkeypatch):
    monkeypatch.setattr(learning, "plot", lambda *a, **k: None)

    def run(seed, greedy):
        scores = {
            arm: {"greedy": greedy, "sampled_correct": [2 * g for g in greedy]}
            for arm in ("warm start", "GRPO outcome")
        }
        return {"seed": seed, "scores": scores, "times": {}, "rft_kept": 0, "completions": 4}

    setting = learning.SETTINGS["tiny"]
    opts = learning.argparse.Namespace(
        k=4, eval_n=3, eval_temperature=0.7, model="tiny", grpo={}, positive_weight=0.1, negative_scale=1.0
    )
    runs = [run(0, [1, 0, 0]), run(1, [1, 1, 0]), run(2, [0, 0, 0])]
    learning.write_report(runs[:2], setting, opts, tmp_path / "a", 10.0)
    learning.write_report(runs[2:], setting, opts, tmp_path / "b", 5.0)
    merged, wall = learning.merged_runs([str(tmp_path / "b.json"), str(tmp_path / "a.json")], setting, opts)
    assert [r["seed"] for r in merged] == [0, 1, 2] and wall == 15.0
    assert learning.summarize(merged, 4) == learning.summarize(runs, 4)
    assert learning.summarize(merged, 4)["GRPO outcome"]["greedy pass@1"]["mean"] == pytest.approx(3 / 9)
    with pytest.raises(SystemExit, match="a seed appears twice"):
        learning.merged_runs([str(tmp_path / "a.json")] * 2, setting, opts)
    other = learning.argparse.Namespace(
        k=4, eval_n=5, eval_temperature=0.7, model="tiny", grpo={}, positive_weight=0.1, negative_scale=1.0
    )
    with pytest.raises(SystemExit, match="is not this experiment"):
        learning.merged_runs([str(tmp_path / "a.json")], setting, other)
    with pytest.raises(SystemExit, match="is not this experiment"):  # another GRPO configuration
        learning.merged_runs(
            [str(tmp_path / "a.json")],
            setting,
            learning.argparse.Namespace(**{**vars(opts), "grpo": {"num_iterations": 2}}),
        )
    with pytest.raises(SystemExit, match="is not this experiment"):  # another W-REINFORCE lambda
        learning.merged_runs(
            [str(tmp_path / "a.json")], setting, learning.argparse.Namespace(**{**vars(opts), "positive_weight": 0.5})
        )
    old = json.loads((tmp_path / "a.json").read_text())
    del old["setting"]["warm_traces"]  # a report written before --warm_traces existed: all traces distinct
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert [r["seed"] for r in learning.merged_runs([str(tmp_path / "old.json")], setting, opts)[0]] == [0, 1]
    limited = learning.Setting(**{**learning.asdict(setting), "warm_traces": 1000})
    with pytest.raises(SystemExit, match="is not this experiment"):  # a warm start from fewer teacher traces
        learning.merged_runs([str(tmp_path / "a.json")], limited, opts)
    with pytest.raises(SystemExit, match="is not this experiment"):  # another scale of GRPO's negative advantages
        learning.merged_runs(
            [str(tmp_path / "a.json")], setting, learning.argparse.Namespace(**{**vars(opts), "negative_scale": 0.5})
        )
    assert json.loads((tmp_path / "a.json").read_text())["versions"] == library_versions()
    elsewhere = json.loads((tmp_path / "a.json").read_text())
    elsewhere["versions"]["trl"] = "0.0.1"  # seeds run under another trl release: other weights from the same seed
    (tmp_path / "elsewhere.json").write_text(json.dumps(elsewhere))
    with pytest.raises(SystemExit, match=r"other library versions \(trl 0\.0\.1 there, .+ here\)"):
        learning.merged_runs([str(tmp_path / "b.json"), str(tmp_path / "elsewhere.json")], setting, opts)
    del elsewhere["versions"]  # a report from before reports kept them
    (tmp_path / "unversioned.json").write_text(json.dumps(elsewhere))
    with pytest.raises(SystemExit, match="records no library versions"):
        learning.merged_runs([str(tmp_path / "unversioned.json")], setting, opts)


def test_grpo_overrides_are_typed_checked_and_keep_the_sampled_completions_equal(monkeypatch, tmp_path):
    assert learning.grpo_overrides(
        ["num_iterations=2", "learning_rate=5e-4", "loss_type=dr_grpo", "mask_truncated_completions=true"]
    ) == {"num_iterations": 2, "learning_rate": 5e-4, "loss_type": "dr_grpo", "mask_truncated_completions": True}
    for bad in (["learning_rat=1e-4"], ["num_iterations"]):
        with pytest.raises(SystemExit, match="expected FIELD=VALUE with FIELD a GRPOConfig field"):
            learning.grpo_overrides(bad)
    import trainer.grpo as grpo
    import trainer.models as models

    seen = {}

    class Stop(Exception):
        pass

    def capture(*, grpo_config, dataset, **kwargs):
        seen.update(config=grpo_config, prompts=len(dataset))
        raise Stop

    monkeypatch.setattr(models, "load_model_and_tokenizer", lambda path: (None, None))
    monkeypatch.setattr(grpo, "build_grpo_trainer", capture)
    setting = learning.SETTINGS["tiny"]
    from trainer.tasks import get_task

    task = get_task(setting.task, **setting.task_params)
    with pytest.raises(Stop):
        learning.grpo_arm(
            setting, "w", task, tmp_path, 0, ("correctness",), (1.0,), {"num_iterations": 4, "learning_rate": 1e-3}
        )
    config = seen["config"]
    assert config.num_iterations == 4 and config.learning_rate == 1e-3 and config.max_steps == 4 * setting.steps
    # the same completions as without the override: steps x batch, from steps x batch / generations prompts
    assert seen["prompts"] * setting.generations == setting.steps * setting.batch
    assert config.generation_batch_size == setting.batch


def test_w_reinforce_advantages_are_plus_lambda_for_correct_and_minus_one_for_wrong(tmp_path):
    """The W-REINFORCE arm trains on +lambda / -1 by the first reward, whatever GRPO's group baseline would give."""
    import torch

    from trainer.config import LoraSection
    from trainer.grpo import GRPOConfig, build_grpo_trainer, prompt_dataset
    from trainer.models import create_tiny_model, load_model_and_tokenizer
    from trainer.tasks import ArithmeticTask

    torch.set_num_threads(1)
    small = dict(
        num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1
    )
    model, tok = load_model_and_tokenizer(create_tiny_model(tmp_path / "tiny", seed=0, **small))
    task = ArithmeticTask(digits=1)

    def even_length(completions, **kwargs):  # "correct" for about half the samples: both signs occur
        return [float(len(c) % 2 == 0) for c in completions]

    def odd_length(completions, **kwargs):  # a second reward the advantages must ignore
        return [float(len(c) % 2) for c in completions]

    seen = []

    class Capturing(learning.weighted_reinforce_trainer(0.25)):
        def _generate_and_score_completions(self, inputs):
            out = super()._generate_and_score_completions(inputs)
            seen.append((self._rewards_per_func[:, 0].clone(), out["advantages"].clone()))
            return out

    config = GRPOConfig(output_dir=str(tmp_path / "o"), max_steps=3, per_device_train_batch_size=8, num_generations=4,
                        max_completion_length=12, learning_rate=1e-2, temperature=1.0, beta=0.0, report_to="none",
                        use_cpu=True, bf16=False, save_strategy="no", seed=0, disable_tqdm=True,
                        reward_weights=[1.0, 1.0])  # fmt: skip
    trainer = build_grpo_trainer(model=model, tokenizer=tok, task=task, dataset=prompt_dataset(task, 0, range(12)),
                                 grpo_config=config, lora_config=LoraSection(r=4).peft_config(),
                                 reward_funcs=[even_length, odd_length], trainer_cls=Capturing)  # fmt: skip
    trainer.train()
    rewards = torch.cat([r for r, _ in seen])
    advantages = torch.cat([a for _, a in seen])
    assert len(seen) == 3 and 0 < int(rewards.sum()) < len(rewards)  # correct and wrong samples both occurred
    assert torch.equal(advantages, torch.where(rewards > 0.5, 0.25, -1.0))


def test_negative_scaled_grpo_multiplies_only_the_negative_advantages(monkeypatch):
    import torch
    from trl import GRPOTrainer

    grpo = torch.tensor([1.5, -0.5, 0.0, -1.0, 0.25])
    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", lambda self, inputs: {"advantages": grpo})
    cls = learning.negative_scaled_trainer(0.25)
    out = cls._generate_and_score_completions(object.__new__(cls), inputs=[])
    assert torch.equal(out["advantages"], torch.tensor([1.5, -0.125, 0.0, -0.25, 0.25]))


def test_negative_scale_is_refused_for_the_w_reinforce_arm(capsys):
    with pytest.raises(SystemExit) as exit_info:
        learning.main(["--arms", learning.WREINFORCE, "--negative_scale", "0.5"])
    assert exit_info.value.code == 2
    assert "--negative_scale applies to the GRPO arms, not W-REINFORCE" in capsys.readouterr().err


def test_warm_traces_below_one_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        learning.main(["--warm_traces", "0"])
    assert exit_info.value.code == 2 and "give at least 1 distinct teacher trace" in capsys.readouterr().err
