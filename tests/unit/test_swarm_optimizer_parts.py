"""Pure parts of the consensus optimizer: which parameters are averaged, wire sizes, the LR view."""

import pytest
import torch

from coordination.swarm.consensus_optimizer import adapter_wire_bytes, butterfly_bytes_sent, lora_parameters
from coordination.swarm.swarm_trainer import EpochLRView


def peft_model():
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    return get_peft_model(Qwen2ForCausalLM(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))


def test_only_lora_parameters_are_averaged():
    model = peft_model()
    names = {id(p): n for n, p in model.named_parameters()}
    params = lora_parameters(model)
    assert params and all("lora_" in names[id(p)] for p in params)
    # 2 layers x (q, v) x (A: r x 32, B: out x r); q out 32, v out 16 (2 kv heads x head dim 8)
    assert sum(p.numel() for p in params) == 2 * ((4 * 32 + 32 * 4) + (4 * 32 + 16 * 4))


def test_plain_model_is_rejected_with_a_fix_it_message():
    with pytest.raises(ValueError, match="get_peft_model"):
        lora_parameters(torch.nn.Linear(2, 2).requires_grad_(False))


def test_wire_sizes_and_butterfly_volume():
    params = [torch.zeros(10, 10), torch.zeros(50)]
    assert adapter_wire_bytes(params, "fp16") == 300 and adapter_wire_bytes(params, "none") == 600
    assert butterfly_bytes_sent(1000, 1) == 0
    assert butterfly_bytes_sent(1000, 2) == 1000 and butterfly_bytes_sent(1000, 4) == 1500


def test_lr_view_reports_the_optimizer_lr_and_never_steps_it():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    view = EpochLRView(opt)
    view.step()
    view.step()
    assert view.get_last_lr() == [0.5]
    opt.param_groups[0]["lr"] = 0.25  # what the consensus optimizer does at each epoch
    assert view.get_last_lr() == [0.25]


@pytest.mark.parametrize("swarm_epoch, trains", [(10, False), (12, False), (9, True)])
def test_a_peer_that_joins_at_or_after_max_epochs_stops_without_a_local_step(monkeypatch, swarm_epoch, trains):
    """A restarted peer whose swarm already reached max_epochs adopts the final state when its optimizer joins,
    then must not take a step: that step's round would wait forever for peers that are done (CI hung on it)."""
    from types import SimpleNamespace

    from trl import GRPOTrainer

    from coordination.swarm.swarm_trainer import SwarmGRPOTrainer

    joined = []
    monkeypatch.setattr(GRPOTrainer, "train", lambda self, *a, **k: "trained")
    t = SwarmGRPOTrainer.__new__(SwarmGRPOTrainer)
    t.max_epochs, t.optimizer, t.model, t.state = 10, None, "model", SimpleNamespace(global_step=0)
    t.accelerator = SimpleNamespace(is_main_process=True, num_processes=1)
    t.optimizer_factory = lambda model: joined.append(model) or SimpleNamespace(local_epoch=swarm_epoch, settled_epoch=swarm_epoch)
    out = t.train()
    assert joined == ["model"]  # joined the swarm (fetching its head state) before deciding
    assert (out == "trained") is trains
    if not trains:
        assert out.global_step == 0
