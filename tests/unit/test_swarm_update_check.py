"""The update check: recomputing a round from its parent state and committed contributions gives its CID
exactly; a swapped contribution, a corrupted contribution blob and a tampered claim are each flagged."""

import dataclasses
import tempfile

import pytest
import torch

from coordination.checkpoints.store import CheckpointStore
from coordination.swarm.aggregation import aggregate, to_wire
from coordination.swarm.consensus import read_contribution, write_contribution
from coordination.swarm.runspec import run_spec_from_dict
from coordination.swarm.training_state import (
    TrainingState,
    adamw_update,
    lr_at,
    read_state_dir,
    seeded_lora_init,
    unflatten,
    write_state_dir,
)
from coordination.swarm.update_check import Member, RoundRecord, check_round

SPEC = run_spec_from_dict({"grpo": {"per_device_train_batch_size": 8, "num_generations": 4, "learning_rate": 1e-2}})


def tiny_base():
    """The same small Qwen2 base on every call (seeded)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    return Qwen2ForCausalLM(config)


def tiny_model():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_base(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    seeded_lora_init(model, SPEC.run_id)
    return model


def add_state(store, model, state, parent=None):
    with tempfile.TemporaryDirectory() as tmp:
        write_state_dir(tmp, model=model, state=state, spec=SPEC)
        return store.add_adapter(tmp, base_model="tiny", run_id=SPEC.run_id, step=state.epoch, parent=parent)


@pytest.fixture
def round_setup(tmp_path):
    store, model = CheckpointStore(tmp_path / "store"), tiny_model()
    state = TrainingState.from_model(model)
    parent = add_state(store, model, state)
    vectors = []
    for i in range(3):
        v = torch.randn(state.numel(), generator=torch.Generator().manual_seed(i))
        vectors.append(to_wire(v / v.norm() * 0.5, "fp16"))
    members = tuple(
        Member(f"peer{i}", write_contribution(store, model, state, v, epoch=0, weight=8, spec=SPEC), 8.0)
        for i, v in enumerate(vectors)
    )
    # what the round's members compute (consensus.EpochConsensus._round), by hand
    grads = to_wire(aggregate(vectors, [8, 8, 8], method="trimmed_mean", value_bound=1.0), "fp16")
    adamw_update(state, unflatten(grads, state.params), lr=lr_at(SPEC, 0))
    state.epoch = 1
    claimed = add_state(store, model, state, parent=parent)
    return store, model, RoundRecord(0, parent, claimed, members), vectors


def test_contribution_round_trips_exactly(round_setup):
    store, model, record, vectors = round_setup
    vec, meta = read_contribution(store.checkout(record.members[1].contribution), model)
    assert torch.equal(vec, vectors[1]) and meta["weight"] == 8 and meta["epoch"] == 0


def test_recomputing_the_round_gives_its_cid(round_setup):
    store, model, record, _ = round_setup
    verdict = check_round(record, spec=SPEC, model=model, store=store)
    assert verdict.ok and verdict.recomputed == record.cid
    assert read_state_dir(store.checkout(record.cid), model).epoch == 1


def test_a_swapped_contribution_is_flagged_naming_the_epoch(round_setup):
    store, model, record, _ = round_setup
    other = write_contribution(store, model, TrainingState.from_model(model), torch.zeros(
        TrainingState.from_model(model).numel()), epoch=0, weight=8, spec=SPEC)  # fmt: skip
    swapped = dataclasses.replace(record, members=(record.members[0], record.members[1], Member("peer2", other, 8)))
    verdict = check_round(swapped, spec=SPEC, model=model, store=store)
    assert not verdict.ok and "epoch 1" in verdict.reason and verdict.recomputed != record.cid


def test_a_corrupted_contribution_blob_names_its_peer(round_setup):
    store, model, record, _ = round_setup
    target = record.members[2].contribution
    others = [record.parent, *(m.contribution for m in record.members[:2])]  # identical small files share blocks
    shared = {str(b) for cid in others for b in store.checkpoint_blocks(cid)}
    for block in store.checkpoint_blocks(target):
        if block.codec.name == "raw" and str(block) not in shared:
            path = store.blocks.path_of(block)
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
    for checkout in store.checkouts_dir.glob("*"):
        import shutil

        shutil.rmtree(checkout)
    verdict = check_round(record, spec=SPEC, model=model, store=store)
    assert not verdict.ok and verdict.culprits == ["peer2"] and "does not verify" in verdict.reason


def test_a_tampered_claim_is_flagged(round_setup):
    store, model, record, _ = round_setup
    verdict = check_round(dataclasses.replace(record, cid=record.parent), spec=SPEC, model=model, store=store)
    assert not verdict.ok and verdict.recomputed == record.cid


def test_a_fresh_state_of_a_large_adapter_is_stored_and_read_back(tmp_path):
    """Zero Adam moments are not written (megabytes of zeros would link one 1 MiB chunk twice, which checkpoint
    manifests refuse); the state reads back with zero moments, its epoch and steps, then moments once non-zero."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=40, hidden_size=512, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4)  # fmt: skip
    model = get_peft_model(Qwen2ForCausalLM(config), LoraConfig(r=128, target_modules=["q_proj", "v_proj"]))
    seeded_lora_init(model, SPEC.run_id)
    state = TrainingState.from_model(model, epoch=3)
    assert state.numel() * 4 * 2 > 2 * (1 << 20)  # the two moment tensors would hold >2 MiB of zeros
    store = CheckpointStore(tmp_path / "store")
    cid = add_state(store, model, state)
    back = read_state_dir(store.checkout(cid), model)
    assert back.epoch == 3 and all(not t.any() for t in back.exp_avg.values())
    adamw_update(state, {n: torch.ones_like(t) for n, t in state.params.items()}, lr=1e-3)
    back = read_state_dir(store.checkout(add_state(store, model, state)), model)
    assert back.steps == 1 and all(bool(t.any()) for t in back.exp_avg_sq.values())


def test_a_state_is_written_and_read_without_touching_the_model(tmp_path):
    """Delayed updates store a round's state while the model trains on: the state dir is written from the state
    alone, under exactly the keys and values PEFT itself saves, and reading it back leaves the model alone."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from coordination.swarm.training_state import ADAPTER_WEIGHTS, read_state

    model = tiny_model()
    state = TrainingState.from_model(model, epoch=2)
    adamw_update(state, {n: torch.ones_like(t) for n, t in state.params.items()}, lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    write_state_dir(tmp_path / "s", model=model, state=state, spec=SPEC)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # the model was not written
    state.load_into(model)  # what PEFT saves for a model holding the state
    ours, peft = load_file(str(tmp_path / "s" / ADAPTER_WEIGHTS)), get_peft_model_state_dict(model)
    assert sorted(ours) == sorted(peft) and all(torch.equal(ours[k], peft[k].float()) for k in peft)
    for _, p in model.named_parameters():  # scramble the model: reading must not write it
        if p.requires_grad:
            p.data.fill_(7.0)
    back = read_state(tmp_path / "s", list(state.params))
    assert back.digest() == state.digest()
    assert all(bool((p == 7.0).all()) for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="does not match the run's LoRA parameters"):
        read_state(tmp_path / "s", [*state.params, "base_model.model.extra.lora_A.default.weight"])


def test_a_state_dir_has_the_same_bytes_under_another_peft_version(tmp_path, monkeypatch):
    """Honest peers on different PEFT releases must publish one CID per epoch: the adapter config a state dir
    holds is the run's, not the installed PEFT's (no `peft_version`, no `inference_mode`, no field a release
    adds), and PEFT still loads that adapter into a model that computes the same logits."""
    import json

    from peft import LoraConfig, PeftModel

    from coordination.swarm.training_state import ADAPTER_CONFIG, ADAPTER_CONFIG_KEYS

    model = tiny_model()
    state = TrainingState.from_model(model, epoch=1)
    adamw_update(state, {n: torch.full_like(t, 0.5) for n, t in state.params.items()}, lr=1e-2)
    store = CheckpointStore(tmp_path / "store")
    ours = add_state(store, model, state)
    written = json.loads((store.checkout(ours) / ADAPTER_CONFIG).read_text())
    assert set(written) == {*ADAPTER_CONFIG_KEYS, "base_model_name_or_path", "revision"}
    assert written["base_model_name_or_path"] == SPEC.model.base and written["target_modules"] == ["q_proj", "v_proj"]

    to_dict = LoraConfig.to_dict  # another release: its own version string, a new field, a changed mode

    def other_release(self):
        return {**to_dict(self), "peft_version": "9.9.9", "lora_future_config": {"x": 1}, "inference_mode": True}

    monkeypatch.setattr(LoraConfig, "to_dict", other_release)
    assert model.peft_config["default"].to_dict()["peft_version"] == "9.9.9"
    assert add_state(store, model, state) == ours
    monkeypatch.undo()

    state.load_into(model)
    loaded = PeftModel.from_pretrained(tiny_base(), str(store.checkout(ours))).eval()
    ids = torch.tensor([[1, 5, 9, 3]])
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, model.eval()(ids).logits)
