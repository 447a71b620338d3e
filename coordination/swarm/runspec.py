"""Run spec: the one `run.yaml` every peer of a run must agree on, and the run id derived from it.

The run id is the CID (v1, dag-cbor codec, sha2-256) of the spec's canonical form: every field,
defaults filled in, as a dag-cbor map. Two peers share a run id iff their specs are equal field by
field, so the run id can prefix every DHT key and peers with a different config cannot mix.

    spec = load_run_spec("recipes/runs/arith_tiny.yaml")
    spec.run_id            # 'bafyrei...'  (DHT prefix, checkpoint manifests, receipts)
    spec.run_id_bytes32    # keccak256 of the run id: the run's bytes32 on chain (= chain.eip712.run_key)
    diff_fields(spec.canonical(), other.canonical())   # ['grpo.learning_rate', ...]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from coordination.chain.connect import DEFAULT_RPC
from coordination.errors import ConfigError
from trainer.config import STRICT, GrpoSection, LoraSection, config_from_dict, read_yaml

COMPRESSIONS = ("fp16", "none")  # coordinate-wise wire formats: the round is recomputable bit for bit
AGGREGATORS = ("trimmed_mean", "mean")


@dataclass(frozen=True)
class ModelSpec:
    """The base model every peer and validator loads (`trainer.base_models.load_pinned_base(**spec.model.pins)`).

    Peers and validators refuse a base whose directory CID (`base_cid`) or `revision` differs.
    `dtype` and `attn_implementation` change the numerics (hence log-prob checks), so the run fixes them.
    Gradient checkpointing (memory for time; same math) is `grpo.gradient_checkpointing`.
    """

    __pydantic_config__ = STRICT

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
    libraries: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "Distribution -> release every peer and validator must run, a version or PEP 440 specifier "
            "(e.g. {torch: 2.13.0, transformers: '==5.25.*'}); empty: unpinned."
        },
    )

    def __post_init__(self):
        from trainer.base_models import library_specifier

        for name, requirement in self.libraries.items():
            try:
                library_specifier(requirement)
            except ValueError as exc:
                raise ConfigError(f"model.libraries.{name}: {exc}") from None

    def check_libraries(self) -> None:
        """Raise LibraryMismatchError (one line: what to install) unless the installed releases are the pinned ones."""
        from trainer.base_models import check_libraries

        check_libraries(self.libraries)

    @property
    def pins(self) -> dict:
        """Keyword arguments of `trainer.base_models.load_pinned_base`."""
        return {
            "base": self.base,
            "revision": self.revision,
            "expected_cid": self.base_cid,
            "dtype": self.dtype,
            "attn_implementation": self.attn_implementation,
            "libraries": dict(self.libraries),
        }


@dataclass(frozen=True)
class TaskSpec:
    __pydantic_config__ = STRICT

    name: str = field(default="arithmetic", metadata={"help": "Task name understood by trainer.tasks.get_task."})
    seed: int = field(default=0, metadata={"help": "Seed of the task's sample generator (prompt = sample(seed, i))."})
    params: dict = field(default_factory=dict, metadata={"help": "Task keyword arguments, e.g. {digits: 2}."})


@dataclass(frozen=True)
class GrpoSpec(GrpoSection):
    """The run's GRPO settings: the shared section (trainer.config.GrpoSection) plus the epoch schedule."""

    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name, per epoch."})
    warmup_epochs: int = field(default=0, metadata={"help": "Warmup length in epochs."})
    total_epochs: int = field(
        default=0, metadata={"help": "Length of the LR schedule in epochs (0: constant schedules only)."}
    )
    max_completion_length: int = field(default=32, metadata={"help": "Max new tokens per completion."})
    seed: int = field(default=0, metadata={"help": "Training seed (sampling, dropout)."})


@dataclass(frozen=True)
class AveragingSpec:
    __pydantic_config__ = STRICT

    matchmaking_time: float = field(default=3.0, metadata={"help": "s to form a group: 0.25 loopback, 10-15 online."})
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
    delayed_updates: bool = field(
        default=False,
        metadata={"help": "Overlap each round with the next epoch's compute (hivemind's delayed parameter updates): "
                  "epoch k's rollouts come from state k-1, so the round's communication costs no compute time."},
    )  # fmt: skip


@dataclass(frozen=True)
class ChainSpec:
    __pydantic_config__ = STRICT

    rpc_url: str = field(default=DEFAULT_RPC, metadata={"help": "JSON-RPC endpoint."})
    chain_id: int = field(default=31337, metadata={"help": "EIP-155 chain id."})
    deployment_file: str | None = field(default=None, metadata={"help": "JSON file with deployed addresses."})
    contracts: dict = field(default_factory=dict, metadata={"help": "Contract name -> address (overrides file)."})


@dataclass(frozen=True)
class RunSpec:
    __pydantic_config__ = STRICT

    name: str = "run"
    model: ModelSpec = field(default_factory=ModelSpec)
    task: TaskSpec = field(default_factory=TaskSpec)
    lora: LoraSection = field(default_factory=LoraSection)
    grpo: GrpoSpec = field(default_factory=GrpoSpec)
    averaging: AveragingSpec = field(default_factory=AveragingSpec)
    chain: ChainSpec | None = None
    initial_checkpoint: str | None = None  # CID of the checkpoint peers start from (None = the base + fresh LoRA)

    def __post_init__(self):
        if isinstance(self.lora.target_modules, str):
            raise ConfigError(
                f"lora.target_modules={self.lora.target_modules!r}: a run names its modules (validators check the "
                "adapter by name), e.g. [q_proj, k_proj, v_proj, o_proj]"
            )
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
        """The run's bytes32 on chain: keccak256 of the run id string (`coordination.chain.eip712.run_key`)."""
        from coordination.chain.eip712 import run_key

        return run_key(self.run_id)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def run_spec_from_dict(raw: Any, *, source: str = "run spec") -> RunSpec:
    """Build a RunSpec from a parsed mapping; unknown or mistyped fields raise ConfigError naming them."""
    return config_from_dict(RunSpec, raw, source=source, error=ConfigError)


def load_run_spec(path: str | Path) -> RunSpec:
    """Parse run.yaml into a RunSpec. Raises ConfigError (one line) on a missing file, bad YAML or bad fields."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"run spec {path} not found: pass --run path/to/run.yaml (see recipes/runs/)")
    return run_spec_from_dict(read_yaml(path, what="run spec", error=ConfigError), source=str(path))


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
