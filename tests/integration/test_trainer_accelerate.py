"""`accelerate launch --multi_gpu --num_processes 2` on a CPU-only box: the GRPO recipe (and its SFT warm start)
runs data-parallel in two CPU processes over gloo (accelerate's `--cpu` flag would start only one process)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.slow
def test_grpo_recipe_under_accelerate_two_processes(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")
    out = tmp_path / "grpo"
    command = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(RECIPES / "grpo_lora.py"),
        "--config",
        str(RECIPES / "configs" / "grpo_arith_tiny.yaml"),
        "--output_dir",
        str(out),
        "--warm_start_steps",
        "2",
        "--warm_start_dir",
        str(tmp_path / "warm"),
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
    env = {**os.environ, "HIVETUNE_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=280, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "adapter_model.safetensors").exists() and (tmp_path / "warm" / "model.safetensors").exists()
    resolved = json.loads((out / "resolved_config.json").read_text())
    assert resolved["grpo"]["max_steps"] == 2 and resolved["num_processes"] == 2, done.stderr[-4000:]
    assert done.stdout.count("held-out pass@1: before") == 1  # only rank 0 reports
