"""The demo's configs (recipes/configs/public_run*.yaml) parse and build the run spec the peers will load."""

from pathlib import Path

import pytest
import yaml

from coordination.swarm.runspec import load_run_spec, run_spec_from_dict
from recipes.public_run.config import PublicRunConfig, base_model_pins
from trainer.base_models import SMOLLM2, base_dir_cid, installed_libraries

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / "recipes" / "configs"
RUNS = Path(__file__).parents[2] / "recipes" / "runs"
PINNED_CID = yaml.safe_load((RUNS / "smollm2.yaml").read_text())["model"]["base_cid"]


def spec_of(cfg: PublicRunConfig, base: str, pins: dict):
    return run_spec_from_dict({"name": "hivetune-demo", **cfg.run_section(base, pins)})


def test_smollm2_demo_builds_a_run_spec_on_the_pinned_builtin_base_in_fp32():
    import torch

    from trainer.models import resolve_dtype
    from trainer.tasks import get_task

    cfg = PublicRunConfig.load(CONFIGS / "public_run_smollm2.yaml")
    assert cfg.model == SMOLLM2 and cfg.warm_start is None  # the run's base is the built-in itself
    pins = base_model_pins(cfg.model, given=cfg.run["model"])
    # the package version and the releases installed here (the operator's); the CID is the config's (nothing hashed)
    assert pins == {"revision": "0.1.2", "libraries": installed_libraries()}
    spec = spec_of(cfg, cfg.model, pins)
    assert spec.model.pins == {
        "base": SMOLLM2,
        "revision": "0.1.2",
        "expected_cid": PINNED_CID,  # the same base as the shipped swarm spec recipes/runs/smollm2.yaml
        "dtype": "float32",
        "attn_implementation": None,
        "libraries": load_run_spec(ROOT / "recipes" / "runs" / "smollm2.yaml").model.libraries,  # as shipped
    }
    assert resolve_dtype(spec.model.dtype) is torch.float32
    assert spec.grpo.gradient_checkpointing is False and spec.grpo.max_completion_length == cfg.eval_max_new_tokens
    task = get_task(spec.task.name, **spec.task.params)
    sample = task.sample(spec.task.seed, 0)
    assert task.verify(sample.answer, sample) and not task.verify("no idea", sample)


def test_tiny_demo_pins_its_warm_start_by_directory_cid(tmp_path):
    cfg = PublicRunConfig.load(CONFIGS / "public_run.yaml")
    assert cfg.model == "tiny" and cfg.warm_start.teacher_flaw_rate == 0.8 and cfg.eval_max_new_tokens is None
    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "config.json").write_text("{}")
    pins = base_model_pins(str(warm), given=cfg.run.get("model", {}))
    assert pins == {"base_cid": base_dir_cid(warm), "libraries": installed_libraries()}  # a local directory: no
    # revision, its content address; the releases installed here
    spec = spec_of(cfg, str(warm), pins)
    assert (spec.model.base, spec.model.base_cid, spec.model.revision) == (str(warm), base_dir_cid(warm), None)
    assert spec.task.params == {"digits": 2} and spec.lora.r == 16


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"run": {"model": {"base": "tiny"}}}, "set the base with the top-level `model` key"),
        ({"run": {"model": "tiny"}}, "run.model='tiny'"),
        ({"modle": "tiny"}, "unknown field(s) ['modle']"),
    ],
)
def test_bad_demo_configs_raise_one_line_errors(tmp_path, raw, fragment):
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError) as info:
        PublicRunConfig.load(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)
