"""GRPO + LoRA through TRL on a very small model: what training changes, what it must not, adapter reload."""

import pytest
import torch
from peft import PeftModel

from trainer.config import LoraSection
from trainer.eval import evaluate
from trainer.grpo import GRPOConfig, GRPOTrainer, build_grpo_trainer, prompt_dataset
from trainer.models import create_tiny_model, load_base_with_adapter, load_model_and_tokenizer
from trainer.tasks import ArithmeticTask

SMALL = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
TASK = ArithmeticTask(digits=1)


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    return create_tiny_model(tmp_path_factory.mktemp("model") / "tiny", seed=0, **SMALL)


def small_grpo_config(out, **overrides):
    fields = dict(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=12,
        learning_rate=5e-2,
        temperature=1.0,
        beta=0.0,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        logging_steps=1,
        seed=0,
        disable_tqdm=True,
    )
    return GRPOConfig(**{**fields, **overrides})


class RecordingTrainer(GRPOTrainer):
    """A subclass as the swarm trainer will write one: it must receive every argument."""

    steps_seen = 0

    def training_step(self, *args, **kwargs):
        RecordingTrainer.steps_seen += 1
        return super().training_step(*args, **kwargs)


def count_ones_reward(prompts, completions, **kwargs):
    """A reward with variance even for a random model (the task rewards are all 0 for it)."""
    return [float(c.count("1")) for c in completions]


def test_default_rewards_and_weights_are_wired(small_model_dir, tmp_path):
    model, tokenizer = load_model_and_tokenizer(small_model_dir)
    trainer = build_grpo_trainer(
        model=model,
        tokenizer=tokenizer,
        task=TASK,
        dataset=prompt_dataset(TASK, 0, range(8)),
        grpo_config=small_grpo_config(tmp_path / "run"),
        lora_config=LoraSection(r=4).peft_config(),
    )
    assert [f.__name__ for f in trainer.reward_funcs] == ["correctness_reward", "format_reward", "steps_reward"]
    assert trainer.reward_weights.tolist() == pytest.approx([1.0, 0.1, 0.5])


@pytest.mark.slow
def test_lora_training_changes_adapter_and_keeps_base_bit_identical(small_model_dir, tmp_path):
    model, tokenizer = load_model_and_tokenizer(small_model_dir)
    base_before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = build_grpo_trainer(
        model=model,
        tokenizer=tokenizer,
        task=TASK,
        dataset=prompt_dataset(TASK, 0, range(32)),
        grpo_config=small_grpo_config(tmp_path / "run"),
        lora_config=LoraSection(r=4).peft_config(),
        trainer_cls=RecordingTrainer,
        reward_funcs=[count_ones_reward],
    )
    assert isinstance(trainer, RecordingTrainer)
    lora_before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lora_" in n}
    assert lora_before and all(p.requires_grad == ("lora_" in n) for n, p in trainer.model.named_parameters())
    trainer.train()
    assert RecordingTrainer.steps_seen >= 2
    lora_after = dict(trainer.model.named_parameters())
    changed = [n for n, p in lora_before.items() if not torch.equal(p, lora_after[n].detach())]
    assert changed, "no LoRA parameter moved"
    base_after = trainer.model.get_base_model().state_dict()
    for name, value in base_before.items():
        key = name if name in base_after else name.replace(".weight", ".base_layer.weight")
        assert torch.equal(value, base_after[key]), name

    adapter_dir = tmp_path / "adapter"
    trainer.save_model(str(adapter_dir))
    assert (adapter_dir / "adapter_model.safetensors").exists() and (adapter_dir / "adapter_config.json").exists()
    reloaded, _ = load_base_with_adapter(small_model_dir, adapter_dir)
    assert isinstance(reloaded, PeftModel)
    batch = tokenizer(["Q:3+4\n", "Q:9+9\n<t>"], return_tensors="pt", padding=True)
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(trainer.model(**batch).logits, reloaded(**batch).logits)
    assert evaluate(trainer.model, tokenizer, TASK, n=8, seed=1) == evaluate(reloaded, tokenizer, TASK, n=8, seed=1)


def test_eval_is_deterministic_for_a_seed(small_model_dir):
    model, tokenizer = load_model_and_tokenizer(small_model_dir)
    first = evaluate(model, tokenizer, TASK, n=16, seed=3, max_new_tokens=12)
    assert first == evaluate(model, tokenizer, TASK, n=16, seed=3, max_new_tokens=12)
    other = evaluate(model, tokenizer, TASK, n=16, seed=4, max_new_tokens=12)
    assert [e["prompt"] for e in first["examples"]] != [e["prompt"] for e in other["examples"]]
    assert 0.0 <= first["accuracy"] <= 1.0 and first["n"] == 16
