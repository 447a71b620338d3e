"""Seeded generation inside TRL's GRPOTrainer: the ids GRPO trains on are the seeded draws, recorded unchanged."""

import copy
import hashlib

import pytest
import torch

from trainer.config import LoraSection
from trainer.grpo import GRPOConfig, build_grpo_trainer, prompt_dataset
from trainer.models import create_tiny_model, load_model_and_tokenizer
from trainer.seeded_generation import mismatched_positions, seeded_generate
from trainer.seeded_grpo import SeededGRPOTrainer, group_generations
from trainer.tasks import ArithmeticTask

SMALL = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2, num_key_value_heads=1)
TASK = ArithmeticTask(digits=1)


class CapturingTrainer(SeededGRPOTrainer):
    """Keeps what GRPO's loss sees: the padded completion ids and mask of every generation batch."""

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.__dict__.setdefault("seen", []).append((out["completion_ids"].cpu(), out["completion_mask"].cpu()))
        return out


def seeder(row, generation):
    return hashlib.sha256(f"test|{row['index']}|{generation}".encode()).digest()


@pytest.fixture(scope="module")
def small_model_dir(tmp_path_factory):
    return create_tiny_model(tmp_path_factory.mktemp("model") / "tiny", seed=0, **SMALL)


def test_group_generations_count_within_groups_modulo_g():
    rows = [{"index": i // 4} for i in range(8)] + [{"index": 1}] * 4
    assert group_generations(rows, 4) == [0, 1, 2, 3] * 3


def test_grpo_trains_on_the_seeded_draws_and_records_them_unchanged(small_model_dir, tmp_path):
    torch.set_num_threads(1)
    model, tok = load_model_and_tokenizer(small_model_dir)
    config = GRPOConfig(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=8, num_generations=4,
                        max_completion_length=12, learning_rate=5e-2, temperature=0.7, beta=0.0, report_to="none",
                        use_cpu=True, bf16=False, save_strategy="no", seed=0, disable_tqdm=True)  # fmt: skip
    trainer = build_grpo_trainer(model=model, tokenizer=tok, task=TASK, dataset=prompt_dataset(TASK, 0, range(8)),
                                 grpo_config=config, lora_config=LoraSection(r=4).peft_config(),
                                 trainer_cls=CapturingTrainer)  # fmt: skip
    trainer.rollout_seeder = seeder
    before = copy.deepcopy(trainer.model).eval()
    trainer.train()
    samples = trainer.take_seeded_rollouts(0)
    assert len(samples) == 8 and trainer.take_seeded_rollouts(0) == []
    assert [s.generation for s in samples] == [0, 1, 2, 3] * 2
    ((ids, mask),) = trainer.seen
    for row, s in enumerate(samples):
        assert ids[row][mask[row].bool()].tolist() == s.completion_ids  # what the loss saw = what is recorded
        assert s.seed == seeder(s.row, s.generation) and s.reward is not None
        assert len(s.completion_ids) == 12 or s.completion_ids[-1] == tok.eos_token_id
        full = torch.tensor([s.prompt_ids + s.completion_ids])
        with torch.no_grad():
            logits = before(input_ids=full).logits[0, len(s.prompt_ids) - 1 : -1].double()
        assert mismatched_positions(logits, s.completion_ids, seed=s.seed, temperature=0.7) == []
        recomputed = torch.log_softmax(logits / 0.7, -1).gather(1, torch.tensor(s.completion_ids)[:, None])[:, 0]
        assert recomputed.tolist() == pytest.approx(s.logprobs, abs=1e-5)
    # the same seed regenerates the same completion alone (batching does not change a draw)
    again, _ = seeded_generate(
        before, [samples[5].prompt_ids], [samples[5].seed], max_new_tokens=12, temperature=0.7,
        eos_token_ids=[tok.eos_token_id], pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    assert again[0] == samples[5].completion_ids
