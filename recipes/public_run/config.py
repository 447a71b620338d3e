"""The demo's config (recipes/configs/public_run*.yaml) and the run spec section it builds for the peers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CONFIG = Path(__file__).parents[1] / "configs" / "public_run.yaml"
TOKEN = 10**18  # base units of one HIVE: stakes, bonds and `reward_tokens`


@dataclass
class PublicRunConfig:
    """The demo's knobs; `run` is merged into the generated run.yaml (grpo, lora, averaging...)."""

    output_dir: str = "outputs/demo"
    model: str = "tiny"  # the run's base: 'tiny', 'smollm2-135m-instruct' (built-ins) or a local model dir
    peers: int = 2
    epochs: int = 12
    task: str = "arithmetic"
    task_params: dict = field(default_factory=lambda: {"digits": 2})
    eval_n: int = 200
    eval_seed: int = 12_345
    eval_every: int = 4  # evaluate the per-epoch checkpoints every N epochs for the plot
    attest_eval_n: int = 64  # samples of the validators' transparent eval
    warm_start: dict | None = field(default_factory=dict)  # ensure_warm_start settings; None: the base as it is
    eval_max_new_tokens: int | None = None  # held-out eval budget (None: trainer.prompts.completion_token_budget)
    torch_threads: int = 0  # intra-op threads of every process (0: torch's default; 1 is best on a busy 2-core box)
    run: dict = field(default_factory=dict)
    reward_tokens: int = 1_000
    rollout_rate: float = 0.1
    peer_timeout_s: float = 900.0

    @classmethod
    def load(cls, path: str | Path, **overrides) -> PublicRunConfig:
        import yaml

        raw = yaml.safe_load(Path(path).read_text()) or {}
        known = set(cls.__dataclass_fields__)
        if set(raw) - known:
            raise ValueError(f"{path}: unknown key(s) {sorted(set(raw) - known)}: known keys are {sorted(known)}")
        return cls(**{**raw, **{k: v for k, v in overrides.items() if v is not None}})

    def __post_init__(self):
        if not isinstance(self.run.get("model", {}), dict) or "base" in self.run.get("model", {}):
            raise ValueError(
                f"run.model={self.run.get('model')!r}: set the base with the top-level `model` key; "
                "run.model may only add pins (base_cid, revision, dtype, attn_implementation)"
            )

    def run_section(self, base: str, pins: dict) -> dict:
        """The run spec from this config: `model` (base, its pins, then `run.model`), `task`, the rest of `run`."""
        return {
            "model": {"base": base, **pins, **self.run.get("model", {})},
            "task": {"name": self.task, "seed": 0, "params": self.task_params},
            **{k: v for k, v in self.run.items() if k != "model"},
        }

    @property
    def step_timeout_s(self) -> float:
        """How long one validator step (validate, eval-attest) may take: a real model needs longer than the tiny."""
        return max(600.0, self.peer_timeout_s)


def base_model_pins(base: str, *, given: dict) -> dict:
    """What the run spec pins of `base` unless `given` pins it: its package version (built-ins), its directory CID."""
    from trainer.base_models import base_dir_cid, builtin_revision, is_builtin_base, local_base_dir

    pins = {}
    if is_builtin_base(base) and "revision" not in given:
        pins["revision"] = builtin_revision(base)
    if "base_cid" not in given:
        pins["base_cid"] = base_dir_cid(local_base_dir(base))
    return pins
