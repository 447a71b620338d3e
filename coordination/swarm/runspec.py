"""Run spec: the one `run.yaml` every peer of a run must agree on, and the run id derived from it.

The run id is the CID (v1, dag-cbor codec, sha2-256) of the spec's canonical form: every field,
defaults filled in, as a dag-cbor map. Two peers share a run id iff their specs are equal field by
field, so the run id can prefix every DHT key and peers with a different config cannot mix.

    spec = load_run_spec("recipes/runs/arith_tiny.yaml")
    spec.run_id            # 'bafyrei...'  (DHT prefix, checkpoint manifests, receipts)
    spec.run_id_bytes32    # keccak256 of the run id: the run's bytes32 on chain (= chain.signing.run_key)
    diff_fields(spec.canonical(), other.canonical())   # ['grpo.learning_rate', ...]
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from coordination.chain.connect import DEFAULT_RPC
from coordination.errors import ConfigError

COMPRESSIONS = ("fp16", "none")  # coordinate-wise wire formats: the round is recomputable bit for bit
AGGREGATORS = ("trimmed_mean", "mean")


@dataclass(frozen=True)
class ModelSpec:
    """The base model every peer and validator loads (`trainer.base_models.load_pinned_base(**spec.model.pins)`).

    Peers and validators refuse a base whose directory CID (`base_cid`) or `revision` differs.
    `dtype` and `attn_implementation` change the numerics (hence log-prob checks), so the run fixes them.
    Gradient checkpointing (memory for time; same math) is `grpo.gradient_checkpointing`.
    """

    base: str = field(
        default="tiny",
        metadata={"help": "'tiny', 'smollm2-135m-instruct' (built-ins, no download) or an HF id/path."},
    )
    revision: str | None = field(
        default=None, metadata={"help": "HF commit for hub ids; the package version for built-ins (e.g. '0.1.2')."}
    )
    base_cid: str | None = field(
        default=None, metadata={"help": "Base directory CID (trainer.base_models.base_dir_cid); None: unpinned."}
    )
    dtype: str = field(default="auto", metadata={"help": "auto (bf16 on CUDA, fp32 on CPU), bfloat16, float32."})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "sdpa, eager, flash_attention_2; None: transformers' default."}
    )

    @property
    def pins(self) -> dict:
        """Keyword arguments of `trainer.base_models.load_pinned_base`."""
        return {
            "base": self.base,
            "revision": self.revision,
            "expected_cid": self.base_cid,
            "dtype": self.dtype,
            "attn_implementation": self.attn_implementation,
        }


@dataclass(frozen=True)
class TaskSpec:
    name: str = field(default="arithmetic", metadata={"help": "Task name understood by trainer.tasks.get_task."})
    seed: int = field(default=0, metadata={"help": "Seed of the task's sample generator (prompt = sample(seed, i))."})
    params: dict = field(default_factory=dict, metadata={"help": "Task keyword arguments, e.g. {digits: 2}."})


@dataclass(frozen=True)
class LoraSpec:
    r: int = field(default=8, metadata={"help": "LoRA rank."})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    target_modules: tuple = field(default=("q_proj", "v_proj"), metadata={"help": "Modules that get adapters."})


@dataclass(frozen=True)
class GrpoSpec:
    learning_rate: float = field(default=5e-4, metadata={"help": "Peak LR of the LoRA parameters."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name, per epoch."})
    warmup_epochs: int = field(default=0, metadata={"help": "Warmup length in epochs."})
    total_epochs: int = field(
        default=0, metadata={"help": "Length of the LR schedule in epochs (0: constant schedules only)."}
    )
    num_generations: int = field(default=4, metadata={"help": "Completions per prompt (the GRPO group)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Completions per local step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Local micro-batches per local step."})
    max_completion_length: int = field(default=32, metadata={"help": "Max new tokens per completion."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of rollouts."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (0 = no reference model)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Local clip, applied before grads reach the swarm."})
    seed: int = field(default=0, metadata={"help": "Training seed (sampling, dropout)."})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in backward: less memory, ~30% more time (off on CPU)."},
    )


@dataclass(frozen=True)
class AveragingSpec:
    matchmaking_time: float = field(default=3.0, metadata={"help": "s to form a group: 3-5 locally, 10-15 internet."})
    averaging_timeout: float = field(default=30.0, metadata={"help": "s after which a round is abandoned."})
    compression: str = field(default="fp16", metadata={"help": "Gradient wire format: fp16 | none (fp32)."})
    aggregator: str = field(
        default="trimmed_mean", metadata={"help": "Robust aggregation per coordinate: trimmed_mean | mean."}
    )
    trim_fraction: float = field(
        default=0.25, metadata={"help": "trimmed_mean drops ceil(f*n) values per end (at most (n-1)//2)."}
    )
    straggler_timeout: float = field(
        default=30.0, metadata={"help": "s the group waits for an expected member's contribution before going on."}
    )
    min_group: int = field(
        default=1, metadata={"help": "A round waits (without timeout) until at least this many peers are ready."}
    )


@dataclass(frozen=True)
class ChainSpec:
    rpc_url: str = field(default=DEFAULT_RPC, metadata={"help": "JSON-RPC endpoint."})
    chain_id: int = field(default=31337, metadata={"help": "EIP-155 chain id."})
    deployment_file: str | None = field(default=None, metadata={"help": "JSON file with deployed addresses."})
    contracts: dict = field(default_factory=dict, metadata={"help": "Contract name -> address (overrides file)."})


SECTIONS = {
    "model": ModelSpec,
    "task": TaskSpec,
    "lora": LoraSpec,
    "grpo": GrpoSpec,
    "averaging": AveragingSpec,
    "chain": ChainSpec,
}


@dataclass(frozen=True)
class RunSpec:
    name: str = "run"
    model: ModelSpec = field(default_factory=ModelSpec)
    task: TaskSpec = field(default_factory=TaskSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    grpo: GrpoSpec = field(default_factory=GrpoSpec)
    averaging: AveragingSpec = field(default_factory=AveragingSpec)
    chain: ChainSpec | None = None
    initial_checkpoint: str | None = None  # CID of the checkpoint peers start from (None = the base + fresh LoRA)

    def __post_init__(self):
        if self.averaging.compression not in COMPRESSIONS:
            raise ConfigError(f"averaging.compression={self.averaging.compression!r}: use one of {COMPRESSIONS}")
        if self.averaging.aggregator not in AGGREGATORS:
            raise ConfigError(f"averaging.aggregator={self.averaging.aggregator!r}: use one of {AGGREGATORS}")
        if not 0 <= self.averaging.trim_fraction < 0.5:
            raise ConfigError(f"averaging.trim_fraction={self.averaging.trim_fraction}: use a value in [0, 0.5)")
        decays = self.grpo.lr_scheduler_type not in ("constant", "constant_with_warmup")
        if decays and self.grpo.total_epochs <= 0:
            raise ConfigError(
                f"grpo.lr_scheduler_type={self.grpo.lr_scheduler_type!r} needs grpo.total_epochs (the schedule length)"
            )
        per_step = self.grpo.per_device_train_batch_size * self.grpo.gradient_accumulation_steps
        if per_step % self.grpo.num_generations:
            raise ConfigError(
                f"grpo.per_device_train_batch_size*gradient_accumulation_steps={per_step} must be a multiple of "
                f"grpo.num_generations={self.grpo.num_generations}"
            )

    @property
    def samples_per_local_step(self) -> int:
        """Completions one peer contributes per epoch (its assignment x group size): its max averaging weight."""
        return self.grpo.per_device_train_batch_size * self.grpo.gradient_accumulation_steps

    def canonical(self) -> dict[str, Any]:
        """Every field with defaults filled in, tuples as lists: the form that is hashed and published."""
        return _plain(asdict(self))

    def encode(self) -> bytes:
        import dag_cbor

        return dag_cbor.encode(self.canonical())

    @cached_property
    def _cid(self):
        from multiformats import CID, multihash

        return CID("base32", 1, "dag-cbor", multihash.digest(self.encode(), "sha2-256"))

    @property
    def run_id(self) -> str:
        return str(self._cid)

    @property
    def run_id_bytes32(self) -> bytes:
        """The run's bytes32 on chain: keccak256 of the run id string (`coordination.chain.signing.run_key`)."""
        from coordination.chain.signing import run_key

        return run_key(self.run_id)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _build_section(cls, raw: Any, where: str):
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    values = {}
    for key, value in raw.items():
        default = known[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        values[key] = _check_type(value, known[key], f"{where}.{key}")
    return cls(**values)


def _check_type(value: Any, spec_field: dataclasses.Field, where: str) -> Any:
    default = spec_field.default if spec_field.default is not dataclasses.MISSING else spec_field.default_factory()
    if value is None or default is None:
        return value
    if isinstance(default, bool) != isinstance(value, bool):
        raise ConfigError(f"{where}={value!r}: expected {type(default).__name__}")
    if isinstance(default, bool) or not isinstance(default, int | float | str | tuple | dict):
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool):
        raise ConfigError(f"{where}={value!r}: expected {type(default).__name__}")
    return value


def run_spec_from_dict(raw: Any, *, source: str = "run spec") -> RunSpec:
    """Build a RunSpec from a parsed mapping; unknown or mistyped fields raise ConfigError naming them."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a YAML mapping at top level, got {type(raw).__name__}")
    top = {f.name for f in fields(RunSpec)}
    unknown = sorted(set(raw) - top)
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {unknown}; known: {sorted(top)}")
    values = {k: v for k, v in raw.items() if k not in SECTIONS}
    for key in ("name", "initial_checkpoint"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            raise ConfigError(f"{source}: {key}={values[key]!r}: expected a string")
    for key, cls in SECTIONS.items():
        if key == "chain" and raw.get("chain") is None:
            continue
        values[key] = _build_section(cls, raw.get(key), f"{source}: {key}")
    try:
        return RunSpec(**values)
    except TypeError as exc:  # a section given where a scalar belongs, etc.
        raise ConfigError(f"{source}: {exc}") from exc


def load_run_spec(path: str | Path) -> RunSpec:
    """Parse run.yaml into a RunSpec. Raises ConfigError (one line) on a missing file, bad YAML or bad fields."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"run spec {path} not found: pass --run path/to/run.yaml (see recipes/runs/)") from exc
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise ConfigError(f"run spec {path}: malformed YAML{where}: fix the syntax") from exc
    return run_spec_from_dict(raw, source=str(path))


def diff_fields(ours: dict, theirs: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two canonical specs."""
    out = []
    for key in sorted(set(ours) | set(theirs)):
        a, b, name = ours.get(key), theirs.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(diff_fields(a, b, f"{name}."))
        elif a != b:
            out.append(name)
    return out
