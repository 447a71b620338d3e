"""The built-in SmolLM2-135M-Instruct: deterministic conversion pinned by CID, the GRPO recipe on it, PEFT reload.

Slow (a conversion is ~30 s, a load ~15 s on 2 cores). The converted base is cached once per machine
(`trainer.base_models.builtin_cache_dir`, under $HIVETUNE_HOME or the user cache dir), so only the
first session pays for it; the determinism test converts once more, fresh.
"""

import json
from pathlib import Path

import pytest
import yaml

from recipes.recipe_entry import run_recipe
from trainer.base_models import (
    SMOLLM2,
    BaseModelMismatchError,
    base_dir_cid,
    builtin_gguf_path,
    convert_gguf,
    ensure_builtin_base,
    load_pinned_base,
)

pytestmark = pytest.mark.slow
CONFIG = Path(__file__).resolve().parents[2] / "recipes" / "configs" / "grpo_smollm2.yaml"
PINNED_CID = yaml.safe_load(CONFIG.read_text())["base_cid"]


@pytest.fixture(scope="session")
def smollm2_dir():
    return ensure_builtin_base(SMOLLM2)


def test_a_fresh_conversion_has_the_pinned_cid(smollm2_dir, tmp_path):
    fresh = convert_gguf(builtin_gguf_path(SMOLLM2), tmp_path / "fresh")
    assert base_dir_cid(fresh) == base_dir_cid(smollm2_dir) == PINNED_CID
    (fresh / "config.json").write_text((fresh / "config.json").read_text().replace("576", "577", 1))
    with pytest.raises(BaseModelMismatchError, match=f"but the spec pins {PINNED_CID}"):
        load_pinned_base(str(fresh), expected_cid=PINNED_CID)


def test_grpo_recipe_runs_and_its_adapter_loads_with_peft(smollm2_dir, tmp_path):
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    from recipes.grpo_lora import GRPOConfig, GRPORecipeArguments, ModelConfig, main

    out = tmp_path / "grpo"
    argv = [
        "--config",
        str(CONFIG),
        "--output_dir",
        str(out),
        "--warm_start_steps",
        "0",
        "--max_steps",
        "2",
        "--n_prompts",
        "8",
        "--eval_n",
        "2",
        "--disable_tqdm",
        "true",
        "--learning_rate",
        "1e-2",
    ]
    run_recipe(main, GRPORecipeArguments, GRPOConfig, ModelConfig, argv=argv)
    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 8

    base, tokenizer = load_pinned_base(SMOLLM2, expected_cid=PINNED_CID, revision="0.1.2")
    reference = {k: v.clone() for k, v in base.state_dict().items()}
    model = PeftModel.from_pretrained(base, str(out)).eval()
    loaded = {k.replace(".default", ""): v for k, v in model.state_dict().items() if "lora_" in k}
    for name, tensor in adapter.items():
        assert torch.equal(loaded[name], tensor)
    wrapped = model.state_dict()
    for name, tensor in reference.items():  # the base is untouched under the adapter
        key = f"base_model.model.{name}"
        key = key if key in wrapped else key.replace(".weight", ".base_layer.weight")
        assert torch.equal(wrapped[key], tensor), name
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
