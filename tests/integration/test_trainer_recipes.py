"""Every shipped recipe config parses and runs a few steps (tiny sizes via overrides); bad configs fail in one line."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from recipes.recipe_entry import run_recipe
from trainer.config import WarmStartSection
from trainer.errors import TrainerConfigError
from trainer.pipeline import load_pipeline_config, run_single_peer

CONFIGS = Path(__file__).resolve().parents[2] / "recipes" / "configs"
TRAINER_RECIPES = ("recipes/sft_warmstart.py", "recipes/grpo_lora.py", "recipes.single_peer")
FEW_GRPO_STEPS = [
    "--max_steps",
    "2",
    "--per_device_train_batch_size",
    "8",
    "--num_generations",
    "4",
    "--n_prompts",
    "16",
    "--eval_n",
    "4",
    "--logging_steps",
    "1",
    "--disable_tqdm",
    "true",
]


GPU_CONFIGS = ("grpo_smollm2_gpu.yaml", "grpo_qwen2.5_0.5b_gpu.yaml")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HIVETUNE_HOME", str(tmp_path / "home"))


def recipe(name):
    if name == "sft":
        from recipes.sft_warmstart import SFTConfig, WarmStartArguments, main

        return main, (WarmStartArguments, SFTConfig)
    from recipes.grpo_lora import GRPOConfig, GRPORecipeArguments, ModelConfig, main

    return main, (GRPORecipeArguments, GRPOConfig, ModelConfig)


def test_every_shipped_trainer_config_is_covered():
    """Configs launched by the trainer recipes (first line = launch command) are exactly the ones run below."""
    launched = {
        p.name for p in CONFIGS.glob("*.yaml") if any(r in p.read_text().splitlines()[0] for r in TRAINER_RECIPES)
    }
    assert launched == {
        "sft_arith_tiny.yaml",
        "grpo_arith_tiny.yaml",
        "single_peer_arith_tiny.yaml",
        "grpo_smollm2.yaml",  # runs in tests/integration/test_trainer_smollm2.py
        *GPU_CONFIGS,  # parsed below; they run on a GPU only
    }
    for name in launched:
        first = (CONFIGS / name).read_text().splitlines()[0]
        assert first.startswith("# ") and name in first  # the first line is the launch command


@pytest.mark.slow
def test_sft_config_runs_a_few_steps(tmp_path):
    main, types = recipe("sft")
    out = tmp_path / "sft"
    run_recipe(
        main,
        *types,
        argv=[
            "--config",
            str(CONFIGS / "sft_arith_tiny.yaml"),
            "--max_steps",
            "3",
            "--output_dir",
            str(out),
            "--eval_n",
            "4",
            "--disable_tqdm",
            "true",
        ],
    )
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert json.loads((out / "eval" / "eval.json").read_text())["warm start"]["n"] == 4
    assert json.loads((out / "resolved_config.json").read_text())["sft"]["max_steps"] == 3


@pytest.mark.slow
def test_grpo_config_runs_a_few_steps(tmp_path):
    main, types = recipe("grpo")
    out = tmp_path / "grpo"
    run_recipe(
        main,
        *types,
        argv=[
            "--config",
            str(CONFIGS / "grpo_arith_tiny.yaml"),
            "--output_dir",
            str(out),
            "--warm_start_steps",
            "2",
            "--warm_start_dir",
            str(tmp_path / "warm"),
            *FEW_GRPO_STEPS,
        ],
    )
    assert (out / "adapter_model.safetensors").exists() and (out / "adapter_config.json").exists()
    report = json.loads((out / "eval" / "eval.json").read_text())
    assert set(report) == {"before GRPO", "after GRPO"}
    resolved = json.loads((out / "resolved_config.json").read_text())
    assert resolved["model"]["lora_target_modules"] == "all-linear" and resolved["grpo"]["temperature"] == 0.7


@pytest.mark.slow
def test_single_peer_config_runs_a_tiny_pipeline(tmp_path):
    cfg = load_pipeline_config(CONFIGS / "single_peer_arith_tiny.yaml", output_dir=tmp_path / "sp")
    grpo = dataclasses.replace(cfg.grpo, max_steps=2, per_device_train_batch_size=8, num_generations=4)
    cfg = dataclasses.replace(cfg, warm_start=WarmStartSection(max_steps=3), eval_n=4, n_prompts=16, grpo=grpo)
    summary = run_single_peer(cfg)
    assert summary["gain"] == summary["after"]["accuracy"] - summary["before"]["accuracy"]
    assert (tmp_path / "sp" / "seed0" / "adapter" / "adapter_config.json").exists()
    assert json.loads((tmp_path / "sp" / "seed0" / "summary.json").read_text())["seed"] == 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--bogus_key", "3"], "error: Some specified arguments are not used"),
        (
            ["--reward_weights", "1.0", "2.0"],
            "error: rewards='correctness,format,steps' has 3 entries but reward_weights",
        ),
        (["--task", "sudoku"], "error: unknown task 'sudoku': choose one of arithmetic, countdown, gsm8k"),
        (["--model_name_or_path", "/no/such/model"], "error: model '/no/such/model' not found locally"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, extra, message):
    command = [
        sys.executable,
        str(CONFIGS.parent / "grpo_lora.py"),
        "--config",
        str(CONFIGS / "grpo_arith_tiny.yaml"),
        "--output_dir",
        str(tmp_path / "o"),
        "--warm_start_steps",
        "0",
        *extra,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_configs_parse_with_gpu_settings(name):
    from trl import TrlParser

    from recipes.grpo_lora import GRPOConfig, GRPORecipeArguments, ModelConfig, check_args

    parser = TrlParser((GRPORecipeArguments, GRPOConfig, ModelConfig))
    script, args, model = parser.parse_args_and_config(args=["--config", str(CONFIGS / name), "--use_cpu", "true"])
    check_args(script, args)
    text = (CONFIGS / name).read_text()
    assert "use_cpu: false" in text and "bf16: true" in text and model.dtype == "bfloat16"
    assert script.task == "gym" and model.attn_implementation == "sdpa"


def test_malformed_pipeline_config_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: arithmetic\ngrpo_steps: 3\n")
    with pytest.raises(TrainerConfigError, match=r"unknown field\(s\) \[.grpo_steps.\]; known: "):
        load_pipeline_config(bad)
    bad.write_text("grpo: {per_device_train_batch_size: 30, num_generations: 8}\n")
    with pytest.raises(TrainerConfigError, match="per_device_train_batch_size=30 is not a multiple of"):
        load_pipeline_config(bad)
