"""A validator's policies: ONE base model, the run's LoRA adapters swapped in by checkpoint CID.

`PolicyPool(spec, store=..., dht=...)` loads the run's base model once and wraps it in a PEFT model
with the spec's LoRA config. `pool(cid)` returns `(model, tokenizer)` holding that checkpoint's
adapter: its tensors come from a bounded LRU of adapter state dicts (`max_adapters`), and are copied
into the one model (the literal CID `base` zeroes the LoRA B matrices: exactly the base model).

An adapter is refused (`AdapterRefused`) unless its `adapter_config.json` is the spec's LoRA
(type, rank, alpha, target modules, no `modules_to_save`, no DoRA/rsLoRA/bias/patterns, ...) and its
tensors are exactly the LoRA A/B matrices of that config: a peer cannot make a validator recompute
under a degenerate model (e.g. `modules_to_save` replacing the final norm so logits are uniform).

    pool = PolicyPool(spec, store=CheckpointStore(), dht=dht, max_adapters=4)
    model, tok = pool("bafy...")          # AdapterRefused / CheckpointError when it cannot be used
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

from coordination.errors import AttestationError

BASE_CHECKPOINT = "base"  # a receipt trained from the bare base model (no adapter yet)

# adapter_config.json fields that must have these values (absent counts as the default)
NEUTRAL_FIELDS = {
    "peft_type": "LORA",
    "modules_to_save": None,
    "use_dora": False,
    "use_rslora": False,
    "bias": "none",
    "layers_to_transform": None,
    "layers_pattern": None,
    "rank_pattern": {},
    "alpha_pattern": {},
    "trainable_token_indices": None,
    "lora_bias": False,
    "fan_in_fan_out": False,
}


class AdapterRefused(AttestationError):
    """A checkpoint's adapter is not the run's LoRA (config or tensors differ from the spec)."""


def expected_lora(spec) -> dict:
    lora = spec.lora
    return {"r": lora.r, "lora_alpha": lora.alpha, "target_modules": sorted(lora.target_modules)}


def check_adapter_config(config: dict, spec) -> None:
    """AdapterRefused unless `config` (adapter_config.json) is the spec's LoRA."""
    if not isinstance(config, dict):
        raise AdapterRefused("adapter_config.json is not an object")
    want = expected_lora(spec)
    got_targets = config.get("target_modules")
    got = {
        "r": config.get("r"),
        "lora_alpha": config.get("lora_alpha"),
        "target_modules": sorted(got_targets) if isinstance(got_targets, list | tuple) else got_targets,
    }
    diffs = [f"{k}={got[k]!r} (spec {want[k]!r})" for k in want if got[k] != want[k]]
    for key, neutral in NEUTRAL_FIELDS.items():
        value = config.get(key, neutral)
        if value != neutral and not (neutral in (None, {}, False) and not value):
            diffs.append(f"{key}={value!r} (spec {neutral!r})")
    if diffs:
        raise AdapterRefused("adapter config differs from the run spec: " + ", ".join(diffs))


class PolicyPool:
    """One base model + LoRA adapters by CID through a bounded LRU (module docstring). Callable: cid -> policy."""

    def __init__(self, spec, *, store=None, dht=None, max_adapters: int = 4, model=None, tokenizer=None,
                 dtype=None):  # fmt: skip
        if max_adapters < 1:
            raise ValueError(f"max_adapters={max_adapters}: keep at least one adapter")
        self.spec, self.store, self.dht, self.max_adapters = spec, store, dht, max_adapters
        self._model, self._tokenizer, self.dtype = model, tokenizer, dtype
        self._adapters: OrderedDict[str, dict] = OrderedDict()
        self._loaded: str | None = None
        self._lock = threading.Lock()
        self.loads = 0  # adapters read from disk (LRU misses)

    def _policy_model(self):
        if self._model is None:
            from peft import get_peft_model

            from coordination.swarm.peer import lora_config_from_spec
            from trainer.base_models import verify_base_model
            from trainer.models import load_model_and_tokenizer

            pins = self.spec.model
            verify_base_model(pins.base, expected_cid=pins.base_cid, revision=pins.revision)  # the run's base only
            base, self._tokenizer = load_model_and_tokenizer(self.spec.model.base)
            config = lora_config_from_spec(self.spec)
            config.inference_mode = True
            self._model = get_peft_model(base, config).eval()
            if self.dtype is not None:  # e.g. torch.bfloat16: pair with EVAL_TOLERANCES["bf16"]
                self._model = self._model.to(self.dtype)
        return self._model

    def __call__(self, cid: str):
        with self._lock:
            model = self._policy_model()
            if cid != self._loaded:
                self._install(model, self._state(cid))
                self._loaded = cid
            return model, self._tokenizer

    def _state(self, cid: str) -> dict | None:
        if cid == BASE_CHECKPOINT:
            return None
        if cid in self._adapters:
            self._adapters.move_to_end(cid)
            return self._adapters[cid]
        state = self._read(cid)
        self._adapters[cid] = state
        while len(self._adapters) > self.max_adapters:
            self._adapters.popitem(last=False)
        return state

    def _read(self, cid: str) -> dict:
        from safetensors.torch import load_file

        from coordination.checkpoints.addressing import parse_cid
        from coordination.checkpoints.resolve import resolve_adapter

        parse_cid(cid)  # a CID, never a local path named by a peer
        folder = Path(resolve_adapter(cid, self.store, dht=self.dht, prefix=self.spec.run_id))
        try:
            config = json.loads((folder / "adapter_config.json").read_text())
        except (OSError, ValueError) as exc:
            raise AdapterRefused(f"adapter_config.json of {cid} is unreadable: {exc}") from exc
        check_adapter_config(config, self.spec)
        self.loads += 1
        return load_file(str(folder / "adapter_model.safetensors"))

    def _install(self, model, state: dict | None) -> None:
        import torch
        from peft import set_peft_model_state_dict

        lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
        if state is None:
            with torch.no_grad():
                for name, p in lora.items():
                    if "lora_B" in name:
                        p.zero_()
            return
        try:
            result = set_peft_model_state_dict(model, state)
        except (RuntimeError, ValueError, KeyError) as exc:
            self._loaded = None
            raise AdapterRefused(f"adapter tensors do not fit the spec's LoRA: {exc}") from exc
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        missing = [k for k in (getattr(result, "missing_keys", []) or []) if "lora_" in k]
        if unexpected or missing or len(state) != len(lora):
            self._loaded = None
            raise AdapterRefused(
                f"adapter tensors are not exactly the spec's LoRA matrices ({len(state)} tensors for {len(lora)}; "
                f"unexpected {unexpected[:3]}, missing {missing[:3]})"
            )
