"""The one config loader (trainer/config.py): strict types, unknown keys, nested sections, one-line errors."""

import dataclasses

import pytest

from trainer.config import LLAMA_PROJECTIONS, GrpoSection, LoraSection, config_from_dict, field_help, load_config
from trainer.errors import TrainerConfigError
from trainer.pipeline import PipelineConfig, PipelineGrpo


def error_of(raw, cls=PipelineConfig) -> str:
    with pytest.raises(TrainerConfigError) as info:
        config_from_dict(cls, raw, source="cfg.yaml")
    assert "\n" not in str(info.value)
    return str(info.value)


def test_sections_are_built_from_nested_mappings_with_yaml_lists_as_tuples():
    cfg = config_from_dict(PipelineConfig, {"lora": {"r": 4, "target_modules": ["q_proj"]}, "grpo": {"beta": 0}})
    assert cfg.lora == LoraSection(r=4, target_modules=("q_proj",))
    assert cfg.grpo == PipelineGrpo(beta=0.0) and isinstance(cfg.grpo.beta, float)  # an int is a float
    assert config_from_dict(PipelineConfig, {}) == PipelineConfig()


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"grpo": {"learning_rat": 1}}, "cfg.yaml: grpo: unknown field(s) ['learning_rat']; known: ['beta', "),
        ({"modle": "x", "seeed": 1}, "cfg.yaml: unknown field(s) ['modle', 'seeed']; known: ['eval_n', "),
        ({"grpo": {"gradient_checkpointing": "yes"}}, "cfg.yaml: grpo.gradient_checkpointing='yes': expected bool"),
        ({"grpo": {"num_generations": True}}, "cfg.yaml: grpo.num_generations=True: expected int"),
        ({"grpo": {"learning_rate": "fast"}}, "cfg.yaml: grpo.learning_rate='fast': expected float"),
        ({"lora": 3}, "cfg.yaml: lora: expected a mapping, got int"),
        ({"lora": {"target_modules": 7}}, "cfg.yaml: lora.target_modules=7: expected tuple[str, ...] | str"),
        ({"task_params": [1]}, "cfg.yaml: task_params: expected a mapping, got list"),
        ([1, 2], "cfg.yaml: expected a YAML mapping at top level, got list"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_dotted_field(raw, message):
    assert message in error_of(raw)


def test_a_sections_own_check_raises_its_own_message():
    assert error_of({"lora": {"r": 0}}) == "lora.r=0, lora.alpha=32: both must be >= 1"
    assert "per_device_train_batch_size=6 is not a multiple of grpo.num_generations=4" in error_of(
        {"grpo": {"per_device_train_batch_size": 6, "num_generations": 4}}
    )


def test_load_config_reads_yaml_applies_overrides_and_names_the_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("seed: 3\ngrpo: {max_steps: 7}\n")
    cfg = load_config(PipelineConfig, path, seed=None, output_dir="out")
    assert (cfg.seed, cfg.grpo.max_steps, cfg.output_dir) == (3, 7, "out")
    path.write_text("grpo: {max_steps: [1,\n")
    with pytest.raises(TrainerConfigError, match=r"malformed YAML at line \d: fix the syntax"):
        load_config(PipelineConfig, path)
    with pytest.raises(TrainerConfigError, match="not found"):
        load_config(PipelineConfig, tmp_path / "missing.yaml")


def test_one_set_of_lora_defaults_and_its_peft_config():
    config = LoraSection().peft_config()
    assert (config.r, config.lora_alpha, config.lora_dropout) == (16, 32, 0.0)
    assert set(config.target_modules) == set(LLAMA_PROJECTIONS)
    assert LoraSection(target_modules="all-linear").peft_config().target_modules == "all-linear"


def test_the_grpo_section_passes_every_field_to_grpo_config_by_its_own_name():
    from trl import GRPOConfig

    section = GrpoSection(learning_rate=1e-3, temperature=0.5, gradient_checkpointing=False)
    config = GRPOConfig(output_dir="/tmp/unused", use_cpu=True, **section.trl_kwargs())
    assert {f.name: getattr(config, f.name) for f in dataclasses.fields(GrpoSection)} == section.trl_kwargs()


def test_every_field_has_help():
    helps = field_help(PipelineConfig)
    assert "grpo.learning_rate" in helps and "lora.r" in helps and all(helps.values())
