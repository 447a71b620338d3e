"""The demo's config (recipes/configs/public_run*.yaml) and the run spec section it builds for the peers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from coordination.errors import ConfigError
from coordination.swarm.runspec import run_spec_from_dict
from trainer.config import STRICT, WarmStartSection, load_config

CONFIG = Path(__file__).parents[1] / "configs" / "public_run.yaml"
TOKEN = 10**18  # base units of one HIVE: stakes, bonds and `reward_tokens`


@dataclass(frozen=True)
class PublicRunConfig:
    """The demo's knobs (read by `trainer.config.load_config`); `run` is merged into the generated run.yaml."""

    __pydantic_config__ = STRICT

    output_dir: str = field(default="outputs/demo", metadata={"help": "Where the demo writes everything."})
    model: str = field(
        default="tiny", metadata={"help": "The run's base: 'tiny', 'smollm2-135m-instruct' (built-ins), a model dir."}
    )
    peers: int = field(default=2, metadata={"help": "Peers that train from the start (a newcomer joins later)."})
    epochs: int = field(default=12, metadata={"help": "Epochs of the run."})
    task: str = field(default="arithmetic", metadata={"help": "Task name (trainer.tasks.get_task)."})
    task_params: dict = field(default_factory=lambda: {"digits": 2}, metadata={"help": "Task keyword arguments."})
    eval_n: int = field(default=200, metadata={"help": "Held-out samples of the accuracy curve."})
    eval_seed: int = field(default=12_345, metadata={"help": "Seed of the held-out set."})
    eval_every: int = field(default=4, metadata={"help": "Evaluate the per-epoch checkpoints every N epochs."})
    attest_eval_n: int = field(default=64, metadata={"help": "Samples of the validators' transparent eval."})
    warm_start: WarmStartSection | None = field(
        default_factory=WarmStartSection, metadata={"help": "SFT before the run (trainer.sft); null: the base as is."}
    )
    eval_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Held-out eval budget (None: trainer.prompts.completion_token_budget)."}
    )
    torch_threads: int = field(
        default=0, metadata={"help": "Intra-op threads of every process (0: torch's default; 1: a busy 2-core box)."}
    )
    run: dict = field(
        default_factory=dict,
        metadata={"help": "Run spec sections (lora, grpo, averaging, model pins) for the generated run.yaml."},
    )
    reward_tokens: int = field(default=1_000, metadata={"help": "HIVE paid out for the period."})
    rollout_rate: float = field(default=0.1, metadata={"help": "Share of rollouts the validators recompute."})
    peer_timeout_s: float = field(default=900.0, metadata={"help": "How long a peer may train before it is failed."})

    @classmethod
    def load(cls, path: str | Path, **overrides) -> PublicRunConfig:
        """The config at `path`; `overrides` that are not None replace top-level keys. ConfigError (one line)."""
        return load_config(cls, path, what="demo config", error=ConfigError, **overrides)

    def __post_init__(self):
        if not isinstance(self.run.get("model", {}), dict) or "base" in self.run.get("model", {}):
            raise ConfigError(
                f"run.model={self.run.get('model')!r}: set the base with the top-level `model` key; "
                "run.model may only add pins (base_cid, revision, dtype, attn_implementation, libraries)"
            )
        run_spec_from_dict(self.run_section(self.model, {}), source="run")  # the run sections as the peers read them

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
    """What the run spec pins of `base` unless `given` pins it: its package version (built-ins), its directory CID,
    and the releases of the libraries that decide the numerics, as installed here (the operator's tested ones)."""
    from trainer.base_models import (
        base_dir_cid,
        builtin_revision,
        installed_libraries,
        is_builtin_base,
        local_base_dir,
    )

    pins = {} if "libraries" in given else {"libraries": installed_libraries()}
    if is_builtin_base(base) and "revision" not in given:
        pins["revision"] = builtin_revision(base)
    if "base_cid" not in given:
        pins["base_cid"] = base_dir_cid(local_base_dir(base))
    return pins
