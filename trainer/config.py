"""One way to read a config: frozen dataclass sections with per-field help, validated by pydantic.

Every entry point's config (the swarm's `RunSpec`, the single-peer `PipelineConfig`, the demo's
`PublicRunConfig`) is a frozen dataclass composed of sections; the sections every entry point shares
(`LoraSection`, `GrpoSection`, `WarmStartSection`) live here, in the lowest layer, with the one set of defaults. Each
field's `metadata["help"]` says what it does (`field_help(cls)` lists them).

    spec = load_config(RunSpec, "run.yaml", what="run spec", error=ConfigError)
    cfg = config_from_dict(PipelineConfig, {"lora": {"r": 8}}, source="my.yaml")
    LoraSection(r=8).peft_config()          # peft.LoraConfig
    GrpoSection().trl_kwargs()              # the GRPOConfig fields of the section

Validation is pydantic's, strict: `"yes"` is not a bool, `True` is not an int, an int is a float,
a YAML list is a tuple; unknown keys are refused. `__post_init__` checks of a section (value ranges,
cross-field rules) run after the types are checked and raise their own error unchanged. Every
failure is one line naming the file and the dotted field, e.g.
`run.yaml: grpo.learning_rate='fast': expected float`.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from trainer.errors import TrainerConfigError

STRICT = ConfigDict(strict=True, extra="forbid")  # every config dataclass sets `__pydantic_config__ = STRICT`

LLAMA_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSection:
    """The LoRA adapter: one set of defaults for every entry point (swarm run spec, single peer, demo)."""

    __pydantic_config__ = STRICT

    r: int = field(default=16, metadata={"help": "LoRA rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (the update is scaled by alpha / r)."})
    dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    target_modules: tuple[str, ...] | str = field(
        default=LLAMA_PROJECTIONS,
        metadata={
            "help": "Module names that get adapters: the seven projections of a Llama/Qwen/Mistral block "
            "(= PEFT's 'all-linear' there); 'all-linear' for other architectures (single peer only)."
        },
    )

    def __post_init__(self):
        if self.r < 1 or self.alpha < 1:
            raise TrainerConfigError(f"lora.r={self.r}, lora.alpha={self.alpha}: both must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise TrainerConfigError(f"lora.dropout={self.dropout}: use a value in [0, 1)")

    def peft_config(self):
        """The `peft.LoraConfig` of this section (a causal LM)."""
        from peft import LoraConfig

        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets, task_type="CAUSAL_LM"
        )


@dataclass(frozen=True)
class GrpoSection:
    """GRPO settings every entry point shares; the names are TRL `GRPOConfig`'s, passed on by `trl_kwargs`."""

    __pydantic_config__ = STRICT

    learning_rate: float = field(default=5e-4, metadata={"help": "Peak LR of the LoRA parameters."})
    num_generations: int = field(default=4, metadata={"help": "Completions per prompt (the GRPO group)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Completions per local step."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Local micro-batches per local step."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of rollouts."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient (0 = no reference model)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clip of a local step."})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in backward: less memory, ~30% more time (off on CPU)."},
    )

    def trl_kwargs(self) -> dict:
        """The section's fields as `GRPOConfig` keyword arguments (every field here is a GRPOConfig field)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(GrpoSection)}


TINY_WARM_START_LR = 3e-3  # a full fine-tune of the tiny model
LORA_WARM_START_LR = 5e-4  # a LoRA warm start of a real model (merged into the base afterwards)
TEACHER_DATA_SEED = 1_000_003  # seed of the warm start's teacher traces (train split), unless a run sets its own


@dataclass(frozen=True)
class WarmStartSection:
    """SFT on teacher traces before GRPO (`trainer.sft.ensure_warm_start`): the one set of its defaults."""

    __pydantic_config__ = STRICT

    max_steps: int = field(default=600, metadata={"help": "SFT steps."})
    batch_size: int = field(default=32, metadata={"help": "SFT batch size."})
    learning_rate: float | None = field(
        default=None,
        metadata={"help": f"SFT LR; None: {TINY_WARM_START_LR} (tiny, full fine-tune), {LORA_WARM_START_LR} (LoRA)."},
    )
    n_samples: int = field(default=20_000, metadata={"help": "Teacher traces (at most max_steps x batch_size used)."})
    teacher_flaw_rate: float = field(
        default=0.0, metadata={"help": "Fraction of traces with the task's systematic mistake (see trainer.sft)."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank of a real model's warm start (alpha = 2r)."})

    def __post_init__(self):
        if self.max_steps < 1 or self.batch_size < 1:
            raise TrainerConfigError(f"warm_start: max_steps={self.max_steps}, batch_size={self.batch_size}: use >= 1")
        if not 0.0 <= self.teacher_flaw_rate <= 1.0:
            raise TrainerConfigError(f"warm_start.teacher_flaw_rate={self.teacher_flaw_rate}: use a value in [0, 1]")

    def traces(self) -> int:
        """Teacher traces the warm start trains on: `n_samples`, at most one per example of its steps."""
        return min(self.n_samples, self.max_steps * self.batch_size)

    def learning_rate_for(self, *, tiny: bool) -> float:
        """The SFT learning rate: the given one, else the tiny model's or a LoRA warm start's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return TINY_WARM_START_LR if tiny else LORA_WARM_START_LR


def field_help(cls) -> dict[str, str]:
    """Field name -> help text of a config dataclass (sections show as `section.field`)."""
    out = {}
    for f in dataclasses.fields(cls):
        inner = _dataclass_of(_hints(cls)[f.name])
        if inner is not None:
            out.update({f"{f.name}.{k}": v for k, v in field_help(inner).items()})
        else:
            out[f.name] = f.metadata.get("help", "")
    return out


def section_field(section, name: str, *, help: str | None = None):
    """A dataclass field with the default and help of `section.name`: flat argument dataclasses (TrlParser's recipes)
    share a section's one default instead of restating it."""
    source = {f.name: f for f in dataclasses.fields(section)}[name]
    return field(default=source.default, metadata={"help": help or source.metadata["help"]})


def config_from_dict(cls, raw: Any, *, source: str = "config", error: type[Exception] = TrainerConfigError):
    """An instance of the config dataclass `cls` from a parsed mapping; `error` (one line) names what is wrong."""
    if not isinstance(raw, dict):
        raise error(f"{source}: expected a YAML mapping at top level, got {type(raw).__name__}")
    try:
        payload = json.dumps(raw)
    except (TypeError, ValueError) as exc:  # YAML dates, sets...: not config values
        raise error(f"{source}: {exc}: use plain strings, numbers, lists and mappings") from None
    try:
        return _adapter(cls).validate_json(payload)
    except ValidationError as exc:
        raise _one_line(exc, cls, source, error) from None


def read_yaml(path: str | Path, *, what: str = "config", error: type[Exception] = TrainerConfigError) -> Any:
    """The parsed YAML at `path` (an empty file is `{}`); one-line `error` for a missing file or bad syntax."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise error(f"{what} {path} not found: check the path") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise error(f"{what} {path}: malformed YAML{where}: fix the syntax") from None
    return {} if raw is None else raw


def load_config(cls, path: str | Path, *, what: str = "config", error: type[Exception] = TrainerConfigError,
                **overrides):  # fmt: skip
    """`cls` from the YAML at `path`; `overrides` that are not None replace top-level keys."""
    raw = read_yaml(path, what=what, error=error)
    if isinstance(raw, dict):
        raw = {**raw, **{k: v for k, v in overrides.items() if v is not None}}
    return config_from_dict(cls, raw, source=str(path), error=error)


_ADAPTERS: dict[type, TypeAdapter] = {}


def _adapter(cls) -> TypeAdapter:
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _dataclass_of(tp) -> type | None:
    """The dataclass in `tp` (itself, or X of `X | None`), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1 and dataclasses.is_dataclass(inner[0]):
            return inner[0]
    return None


def _type_name(tp) -> str:
    if _dataclass_of(tp) is not None:
        return "a mapping"
    if isinstance(tp, type):
        return {"dict": "a mapping", "tuple": "a list", "list": "a list"}.get(tp.__name__, tp.__name__)
    return str(tp).replace("typing.", "")


def _resolve(cls, loc: tuple) -> tuple[list[str], Any]:
    """The dotted field names `loc` points at (union member tags dropped) and the type of the last one."""
    names, current, tp = [], cls, cls
    for part in loc:
        if current is None or not isinstance(part, str):
            break
        hints = _hints(current)
        if part not in hints:
            names.append(part)  # an unknown key
            tp = None
            break
        names.append(part)
        tp = hints[part]
        current = _dataclass_of(tp)
    rest = list(loc[len(names) :])
    while rest and typing.get_origin(tp) in (dict, list):  # into a mapping's value or a list's item
        part, args = rest.pop(0), typing.get_args(tp)
        names.append(str(part))
        tp = (args[-1] if args else None) if typing.get_origin(tp) is dict else (args[0] if args else None)
    return names, tp


def _one_line(exc: ValidationError, cls, source: str, error: type[Exception]) -> Exception:
    errors = exc.errors(include_url=False)
    for err in errors:  # a section's own check (__post_init__) raised: keep its exception and message
        original = (err.get("ctx") or {}).get("error")
        if err["type"] == "value_error" and isinstance(original, Exception):
            return original if isinstance(original, error) else error(f"{source}: {original}")
    unknown: dict[tuple, list[str]] = {}
    for err in errors:
        if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            names, _ = _resolve(cls, err["loc"])
            unknown.setdefault(tuple(names[:-1]), []).append(names[-1])
    if unknown:
        where, keys = next(iter(unknown.items()))
        section = _section(cls, where)
        known = sorted(f.name for f in dataclasses.fields(section)) if section is not None else []
        prefix = f"{'.'.join(where)}: " if where else ""
        return error(f"{source}: {prefix}unknown field(s) {sorted(keys)}; known: {known}")
    err = errors[0]
    names, tp = _resolve(cls, err["loc"])
    dotted = ".".join(names)
    if _dataclass_of(tp) is not None or err["type"] in ("dataclass_type", "dict_type"):
        return error(f"{source}: {dotted}: expected a mapping, got {type(err['input']).__name__}")
    if err["type"] == "missing_argument" or err["type"] == "missing":
        return error(f"{source}: {dotted}: required")
    return error(f"{source}: {dotted}={err['input']!r}: expected {_type_name(tp)}")


def _section(cls, where: tuple) -> type | None:
    current = cls
    for part in where:
        current = _dataclass_of(_hints(current).get(part)) if current is not None else None
    return current
