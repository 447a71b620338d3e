"""A validator's policies: ONE base model, the run's LoRA adapters swapped in by checkpoint CID.

`PolicyPool(spec, store=..., dht=...)` loads the run's pinned base model once (in the spec's dtype, or
the validator's eval `dtype`: "fp32" | "bf16") and wraps it in a PEFT model with the spec's LoRA
config. `pool(cid)` returns `(model, tokenizer)` holding that checkpoint's adapter: its tensors come
from a bounded LRU of adapter state dicts (`max_adapters`), and are copied into the one model (the
literal CID `base` zeroes the LoRA B matrices: exactly the base model).

An adapter is refused (`AdapterRefused`) unless its `adapter_config.json` is the spec's LoRA
(type, rank, alpha, target modules, no `modules_to_save`, no DoRA/rsLoRA/bias/patterns, ...) and its
tensors are exactly the LoRA A/B matrices of that config: a peer cannot make a validator recompute
under a degenerate model (e.g. `modules_to_save` replacing the final norm so logits are uniform).

    pool = PolicyPool(spec, store=CheckpointStore(), dht=dht, max_adapters=4, dtype="fp32")
    model, tok = pool("bafy...")          # AdapterRefused / CheckpointError when it cannot be used
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from coordination.errors import AttestationError, CheckpointError

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

            from trainer.base_models import load_pinned_base
            from trainer.models import resolve_dtype

            pins = self.spec.model.pins
            dtype = pins["dtype"] if self.dtype is None else self.dtype
            base, self._tokenizer = load_pinned_base(**{**pins, "dtype": dtype})  # the run's base only
            config = self.spec.lora.peft_config()
            config.inference_mode = True
            self._model = get_peft_model(base, config).eval()
            if self.dtype is not None:  # the LoRA matrices too, e.g. bf16: pair with EVAL_TOLERANCES["bf16"]
                self._model = self._model.to(resolve_dtype(self.dtype))
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
        """The adapter's tensors, read from the store's verified blocks in memory (no checkout written to disk);
        with a DHT, missing blocks are fetched from the peers that announce the checkpoint first."""
        from safetensors.torch import load

        from coordination.checkpoints.addressing import parse_cid
        from coordination.checkpoints.store import CheckpointStore

        parse_cid(cid)  # a CID, never a local path named by a peer
        store = self.store if self.store is not None else CheckpointStore()
        if self.dht is not None and not store.is_complete(cid):
            from coordination.checkpoints.fetch import fetch_checkpoint

            fetch_checkpoint(self.dht, str(cid), store, prefix=self.spec.run_id or "hivetune")
        files = store.read_files(cid)  # every chunk and file hash checked, as a checkout would
        try:
            config = json.loads(files["adapter_config.json"].decode("utf-8"))
        except (KeyError, UnicodeDecodeError, ValueError) as exc:
            raise AdapterRefused(f"adapter_config.json of {cid} is unreadable: {exc!r}") from exc
        check_adapter_config(config, self.spec)
        if "adapter_model.safetensors" not in files:
            raise CheckpointError(f"checkpoint {cid} has no adapter_model.safetensors")
        self.loads += 1
        return load(files["adapter_model.safetensors"])

    def _lora_params(self, model) -> dict:
        """The model's LoRA parameters by the key PEFT saves them under (adapter name dropped), built once."""
        if getattr(self, "_lora_of", (None,))[0] is not model:
            adapter = getattr(model, "active_adapter", "default")
            adapter = adapter if isinstance(adapter, str) else adapter[0]
            params = {n.replace(f".{adapter}", ""): p for n, p in model.named_parameters() if "lora_" in n}
            self._lora_of = (model, params)
        return self._lora_of[1]

    def _install(self, model, state: dict | None) -> None:
        """Copy the adapter's tensors into the model's LoRA matrices: all of them or (AdapterRefused) none.

        The state must hold exactly the spec's LoRA matrices (the keys `save_pretrained` writes for this
        LoRA, each of its matrix's shape); they are checked before anything is written, then copied in
        place (no PEFT state-dict walk over the whole model per swap)."""
        import torch

        lora = self._lora_params(model)
        if state is None:
            with torch.no_grad():
                for name, p in lora.items():
                    if "lora_B" in name:
                        p.zero_()
            return
        unexpected = sorted(set(state) - set(lora))
        missing = sorted(set(lora) - set(state))
        if unexpected or missing:
            self._loaded = None
            raise AdapterRefused(
                f"adapter tensors are not exactly the spec's LoRA matrices ({len(state)} tensors for {len(lora)}; "
                f"unexpected {unexpected[:3]}, missing {missing[:3]})"
            )
        wrong = [f"{k}: {tuple(state[k].shape)} for {tuple(p.shape)}" for k, p in lora.items()
                 if tuple(state[k].shape) != tuple(p.shape)]  # fmt: skip
        if wrong:
            self._loaded = None
            raise AdapterRefused(f"adapter tensors do not fit the spec's LoRA: {wrong[:3]}")
        with torch.no_grad():
            for key, p in lora.items():
                p.copy_(state[key])
