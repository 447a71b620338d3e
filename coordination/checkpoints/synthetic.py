"""A synthetic, deterministic PEFT-shaped adapter dir (config + safetensors of LoRA-like tensors).

Used by the checkpoint tests and `bench/checkpoint_io.py` where a real model is not the point:

    write_synthetic_adapter(Path("adapter"), megabytes=64, seed=0)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

LORA_CONFIG = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "base_model_name_or_path": "hivetune/tiny",
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "v_proj"],
}


def write_synthetic_adapter(directory: Path, *, megabytes: float = 3.0, seed: int = 0) -> Path:
    """Write adapter_config.json + adapter_model.safetensors (~`megabytes` MB of float32) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    layers = 4
    values_per_layer = max(1, int(megabytes * 1e6 / 4 / layers / 2))
    tensors = {}
    for layer in range(layers):
        for kind in ("lora_A", "lora_B"):
            name = f"base_model.model.layers.{layer}.self_attn.q_proj.{kind}.weight"
            tensors[name] = rng.standard_normal(values_per_layer, dtype=np.float32).reshape(1, -1)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    (directory / "adapter_config.json").write_text(json.dumps(LORA_CONFIG, indent=2, sort_keys=True))
    return directory
