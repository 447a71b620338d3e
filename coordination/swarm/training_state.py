"""The whole training state of an epoch, its deterministic update, and its content-addressed directory.

A peer's state after epoch k is: the LoRA tensors, the AdamW moments, the number of optimizer steps
applied, and the epoch. Every member of epoch k's averaging round applies the same aggregate to the
same state with `adamw_update`, which uses only element-wise IEEE operations (multiply, add,
divide, square root, each rounded once; no fused kernels), so the new state is bit-identical on
every member, and its directory (`write_state_dir`) is byte-identical, hence one CID.

The LR of epoch k is a function of k and the run spec only (`lr_at`): the schedule length is
`grpo.total_epochs`, never a peer's own `--max-epochs`.

    state = TrainingState.from_model(model, epoch=0)
    adamw_update(state, grads, lr=lr_at(spec, state.epoch), ...)   # in place, then state.epoch += 1
    write_state_dir(tmp, model=model, state=state, spec=spec); cid = store.add_adapter(tmp, ...)
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

STATE_TENSORS = "training_state.safetensors"
STATE_META = "training_state.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
BETAS, EPS = (0.9, 0.999), 1e-8


def lora_named_parameters(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) of the trainable LoRA tensors, in module order."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters: wrap it with peft.get_peft_model(model, lora_config)")
    return named


@dataclass
class TrainingState:
    """LoRA tensors + AdamW moments (float32, by parameter name), optimizer steps applied, epoch."""

    params: dict[str, torch.Tensor]
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]
    steps: int
    epoch: int

    @classmethod
    def from_model(cls, model: torch.nn.Module, *, epoch: int = 0) -> TrainingState:
        params = {n: p.detach().to(torch.float32).clone() for n, p in lora_named_parameters(model)}
        zeros = {n: torch.zeros_like(t) for n, t in params.items()}
        return cls(params, zeros, {n: t.clone() for n, t in zeros.items()}, steps=0, epoch=epoch)

    @property
    def names(self) -> list[str]:
        return list(self.params)

    def numel(self) -> int:
        return sum(t.numel() for t in self.params.values())

    def load_into(self, model: torch.nn.Module) -> None:
        """Copy the LoRA tensors into the model's trainable parameters."""
        with torch.no_grad():
            for name, param in lora_named_parameters(model):
                param.copy_(self.params[name].to(param.dtype))

    def digest(self) -> str:
        """sha256 over every tensor's bytes (names sorted) + steps + epoch: equal states, equal digests."""
        h = hashlib.sha256(f"{self.steps}/{self.epoch}".encode())
        for group in (self.params, self.exp_avg, self.exp_avg_sq):
            for name in sorted(group):
                h.update(name.encode())
                h.update(group[name].contiguous().numpy().tobytes())
        return h.hexdigest()


def flatten(tensors: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([tensors[n].detach().reshape(-1).to(torch.float32) for n in names])


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for name, ref in like.items():
        out[name] = flat[offset : offset + ref.numel()].reshape(ref.shape).clone()
        offset += ref.numel()
    if offset != flat.numel():
        raise ValueError(f"vector has {flat.numel()} values, the state {offset}")
    return out


@torch.no_grad()
def adamw_update(state: TrainingState, grads: dict[str, torch.Tensor], *, lr: float, weight_decay: float = 0.0):
    """One AdamW step (torch.optim.AdamW's math, decoupled weight decay) with separately rounded element-wise ops."""
    b1, b2 = BETAS
    state.steps += 1
    bc1 = 1.0 - b1**state.steps
    bc2_sqrt = math.sqrt(1.0 - b2**state.steps)
    step_size = lr / bc1
    for name, p in state.params.items():
        g = grads[name].to(torch.float32)
        m, v = state.exp_avg[name], state.exp_avg_sq[name]
        if weight_decay:
            p.copy_(torch.mul(p, 1.0 - lr * weight_decay))
        m.copy_(torch.add(torch.mul(m, b1), torch.mul(g, 1.0 - b1)))
        v.copy_(torch.add(torch.mul(v, b2), torch.mul(torch.mul(g, g), 1.0 - b2)))
        denom = torch.add(torch.div(torch.sqrt(v), bc2_sqrt), EPS)
        p.copy_(torch.sub(p, torch.mul(torch.div(m, denom), step_size)))


def lr_at(spec, epoch: int) -> float:
    """LR of the update that ends `epoch`: transformers' schedule `grpo.lr_scheduler_type` over `grpo.total_epochs`."""
    g = spec.grpo
    if g.lr_scheduler_type == "constant" and not g.warmup_epochs:
        return float(g.learning_rate)
    from transformers import get_scheduler

    dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=g.learning_rate)
    scheduler = get_scheduler(
        g.lr_scheduler_type, dummy, num_warmup_steps=g.warmup_epochs, num_training_steps=g.total_epochs or None
    )
    return float(g.learning_rate * scheduler.lr_lambdas[0](epoch))


def rollout_state_epoch(spec, epoch: int) -> int:
    """The epoch whose canonical state generated epoch `epoch`'s rollouts (and its gradients): `epoch` itself, or
    with `averaging.delayed_updates` (hivemind's delayed parameter updates) the one before, as epoch k's compute
    overlaps the round that ends k-1; epoch 0 comes from state 0 either way. Validators audit by this."""
    return max(epoch - 1, 0) if spec.averaging.delayed_updates else epoch


def seeded_lora_init(model: torch.nn.Module, run_id: str) -> None:
    """Deterministic fresh LoRA: lora_A ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) seeded by (run id, name), lora_B = 0.

    Every peer starting a run from the base builds exactly the same epoch-0 adapter, whatever its RNG state.
    """
    with torch.no_grad():
        for name, param in lora_named_parameters(model):
            if "lora_B" in name:
                param.zero_()
                continue
            seed = int.from_bytes(hashlib.sha256(f"{run_id}/{name}".encode()).digest()[:8], "big") >> 1
            bound = 1.0 / math.sqrt(param.shape[-1])
            gen = torch.Generator().manual_seed(seed)
            param.copy_((torch.rand(param.shape, generator=gen) * 2 - 1) * bound)


def saved_name(param_name: str) -> str:
    """PEFT's saved key for a trainable parameter name (`get_peft_model_state_dict` drops the adapter name)."""
    return param_name.replace(".default.", ".")


def write_state_dir(directory: Path | str, *, model, state: TrainingState, spec) -> Path:
    """Write the state as a PEFT adapter dir + training-state files, byte-deterministic for equal states.

    The adapter tensors come from `state` (under PEFT's saved names), never from the model's parameters: the
    model is read only for its PEFT config, so a round can store its state while the model trains on."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    inner = getattr(model, "module", model)
    adapter = {saved_name(n): t for n, t in state.params.items()}
    save_file({k: adapter[k].detach().to(torch.float32).contiguous().cpu() for k in sorted(adapter)},
              str(directory / ADAPTER_WEIGHTS), metadata={"format": "pt"})  # fmt: skip
    (directory / ADAPTER_CONFIG).write_text(adapter_config_json(inner, spec))
    moments = {f"exp_avg/{n}": t for n, t in state.exp_avg.items()}
    moments.update({f"exp_avg_sq/{n}": t for n, t in state.exp_avg_sq.items()})
    meta = {"epoch": state.epoch, "optimizer_steps": state.steps, "run_id": spec.run_id, "optimizer": "adamw",
            "betas": list(BETAS), "eps": EPS}  # fmt: skip
    if any(bool(t.any()) for t in moments.values()):
        save_file({k: moments[k].contiguous() for k in sorted(moments)}, str(directory / STATE_TENSORS),
                  metadata={"format": "pt"})  # fmt: skip
    else:  # all-zero moments (a fresh state): not written, as megabytes of zeros would repeat one chunk
        meta["moments"] = "zero"
    (directory / STATE_META).write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n")
    return directory


# The adapter_config.json fields a checkpoint keeps: the ones the run spec decides and PEFT needs to rebuild the
# adapter. Everything else PEFT's `to_dict` writes is left out, as it depends on the installed PEFT and not on
# the run: `peft_version`, `inference_mode` (how this process loaded the model), and the fields each release
# adds (`target_parameters`, `lora_ga_config`, ...; absent means PEFT's default when it loads the adapter).
# Honest peers with different PEFT versions then write byte-equal directories, hence one CID per epoch.
ADAPTER_CONFIG_KEYS = (
    "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "fan_in_fan_out",
    "use_rslora", "use_dora", "modules_to_save", "init_lora_weights",
)  # fmt: skip


def adapter_config_json(model, spec) -> str:
    """The adapter's PEFT config as sorted JSON, with the base named as the run spec names it (not a local path),
    restricted to ADAPTER_CONFIG_KEYS (the same bytes under any PEFT version)."""
    config = model.peft_config[getattr(model, "active_adapter", "default")].to_dict()
    canonical = {key: config[key] for key in ADAPTER_CONFIG_KEYS if key in config}
    canonical["base_model_name_or_path"] = spec.model.base
    canonical["revision"] = spec.model.revision
    return json.dumps(_jsonable(canonical), sort_keys=True, indent=2) + "\n"


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, str | int | float | bool):  # enums
        return value.value
    return value


def read_state_dir(directory: Path | str, model) -> TrainingState:
    """Load a state dir written by `write_state_dir` into `model` and return its TrainingState."""
    state = read_state(directory, [n for n, _ in lora_named_parameters(model)])
    state.load_into(model)
    return state


def read_state(directory: Path | str, names: list[str]) -> TrainingState:
    """The TrainingState of a state dir written by `write_state_dir`, for an adapter with parameters `names`
    (module order); no model is touched. A dir that does not hold exactly those tensors is refused."""
    from safetensors.torch import load_file

    directory = Path(directory)
    saved = load_file(str(directory / ADAPTER_WEIGHTS))
    missing = [n for n in names if saved_name(n) not in saved]
    if missing or len(saved) != len(names):
        raise ValueError(
            f"{directory}: the adapter does not match the run's LoRA parameters (missing {missing[:3]}, "
            f"{len(saved)} tensors for {len(names)}); check the run spec's lora section"
        )
    params = {n: saved[saved_name(n)].to(torch.float32).clone() for n in names}
    zeros = {n: torch.zeros_like(t) for n, t in params.items()}
    state = TrainingState(params, zeros, {n: t.clone() for n, t in zeros.items()}, steps=0, epoch=0)
    meta_path, tensors_path = directory / STATE_META, directory / STATE_TENSORS
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
    if meta is not None and tensors_path.is_file():
        moments = load_file(str(tensors_path))
        for name in state.names:
            state.exp_avg[name] = moments[f"exp_avg/{name}"].clone()
            state.exp_avg_sq[name] = moments[f"exp_avg_sq/{name}"].clone()
        state.steps, state.epoch = int(meta["optimizer_steps"]), int(meta["epoch"])
    elif meta is not None and meta.get("moments") == "zero":  # a fresh state: the moments stay zero
        state.steps, state.epoch = int(meta["optimizer_steps"]), int(meta["epoch"])
    return state
