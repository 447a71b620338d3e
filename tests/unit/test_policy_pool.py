"""PolicyPool: one base model, adapters by CID through a bounded LRU, off-spec adapters refused."""

import json

import pytest
import torch

from coordination.checkpoints.store import CheckpointStore
from coordination.swarm.runspec import run_spec_from_dict
from coordination.verify.policy_pool import AdapterRefused, PolicyPool, check_adapter_config

SPEC = run_spec_from_dict({"lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}})


def base_and_tok(seed=0):
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config

    tok = build_char_tokenizer()
    torch.manual_seed(seed)
    config = tiny_config(
        tok, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64
    )
    return AutoModelForCausalLM.from_config(config).eval(), tok


def adapter(store, tmp_path, name, seed, **lora_overrides):
    """A saved, stored adapter over the same base; returns (cid, the PEFT model that saved it)."""
    from peft import LoraConfig, get_peft_model

    base, _ = base_and_tok()
    config = dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(seed)
    model = get_peft_model(base, LoraConfig(**{**config, **lora_overrides})).eval()
    model.save_pretrained(tmp_path / name)
    return store.add_adapter(tmp_path / name, base_model="tiny", run_id=SPEC.run_id, step=seed), model


@pytest.fixture(scope="module")
def pool_world(tmp_path_factory):
    from peft import get_peft_model

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("pool")
    store = CheckpointStore(tmp / "store")
    base, tok = base_and_tok()
    pool = PolicyPool(SPEC, store=store, max_adapters=2, model=get_peft_model(base, SPEC.lora.peft_config()),
                      tokenizer=tok)  # fmt: skip
    good = [adapter(store, tmp, f"good{i}", seed=i) for i in range(3)]
    degenerate, _ = adapter(store, tmp, "degenerate", seed=9, modules_to_save=["lm_head"])
    return pool, good, degenerate, tok


def logits_of(model, ids=(5, 6, 7, 8)):
    with torch.no_grad():
        return model(input_ids=torch.tensor([list(ids)])).logits


def test_the_pool_swaps_adapters_on_one_model_and_matches_each_saved_adapter(pool_world):
    pool, good, _, _ = pool_world
    seen = []
    for cid, saved in good + good[:1]:
        model, _ = pool(cid)
        assert torch.allclose(logits_of(model), logits_of(saved), atol=1e-6)
        seen.append(id(model))
    assert len(set(seen)) == 1  # one base model in memory, whatever the number of checkpoints
    assert len(pool._adapters) == 2 and pool.loads == 4  # bounded LRU: good0 was evicted and read again


def test_base_is_exactly_the_base_model(pool_world):
    pool, good, _, _ = pool_world
    pool(good[1][0])
    model, _ = pool("base")
    base, _ = base_and_tok()
    assert torch.equal(logits_of(model), logits_of(base))


def test_an_adapter_whose_config_differs_from_the_spec_is_refused(pool_world):
    pool, good, degenerate, _ = pool_world
    with pytest.raises(AdapterRefused, match="modules_to_save"):
        pool(degenerate)
    model, _ = pool(good[2][0])  # the pool keeps working after a refusal
    assert torch.allclose(logits_of(model), logits_of(good[2][1]), atol=1e-6)


def test_a_path_is_never_a_checkpoint(pool_world, tmp_path):
    from coordination.errors import CheckpointError

    pool, *_ = pool_world
    with pytest.raises(CheckpointError):
        pool(str(tmp_path))


@pytest.mark.parametrize(
    "field,value",
    [("r", 8), ("lora_alpha", 32), ("target_modules", ["q_proj"]), ("modules_to_save", ["model.norm"]),
     ("use_dora", True), ("rank_pattern", {"q_proj": 16}), ("bias", "all"), ("peft_type", "IA3")],
)  # fmt: skip
def test_each_off_spec_config_field_is_named(field, value):
    config = {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["v_proj", "q_proj"],
              "modules_to_save": None, "rank_pattern": {}, "bias": "none"}  # fmt: skip
    check_adapter_config(config, SPEC)
    with pytest.raises(AdapterRefused, match=field):
        check_adapter_config(json.loads(json.dumps({**config, field: value})), SPEC)


@pytest.mark.parametrize(
    ("spec_dtype", "eval_dtype", "want"),
    [("bfloat16", None, torch.bfloat16), ("float32", None, torch.float32), ("bfloat16", "fp32", torch.float32)],
)
def test_the_pool_loads_the_base_in_the_spec_dtype_unless_given_an_eval_dtype(tmp_path, spec_dtype, eval_dtype, want):
    from trainer.models import create_tiny_model

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)
    base = create_tiny_model(tmp_path / "base", seed=0, intermediate_size=64, **small)
    spec = run_spec_from_dict({"model": {"base": str(base), "dtype": spec_dtype}, "lora": SPEC.canonical()["lora"]})
    model, _ = PolicyPool(spec, store=CheckpointStore(tmp_path / "store"), dtype=eval_dtype)("base")
    assert {p.dtype for n, p in model.named_parameters() if "lora_" not in n} == {want}  # the base's weights
