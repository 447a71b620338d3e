"""A run spec pins the library releases its numerics depend on (`model.libraries`); peers and validators refuse others.

An honest peer on another torch / transformers / TRL release computes other log-probs and writes other epoch bytes
than the validators who recompute its work: it would be flagged for honest work. The pin turns that into a one-line
refusal, before any network or model load, that says what to install.
"""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

from coordination.errors import ConfigError
from coordination.swarm.runspec import load_run_spec, run_spec_from_dict
from trainer import base_models
from trainer.base_models import (
    RUN_LIBRARIES,
    LibraryMismatchError,
    check_libraries,
    installed_libraries,
    load_pinned_base,
)

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "/ip4/127.0.0.1/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"


def fake_versions(monkeypatch, versions: dict[str, str]):
    real = importlib.metadata.version

    def version(name):
        return versions[name] if name in versions else real(name)

    monkeypatch.setattr(base_models.importlib.metadata, "version", version)


def test_the_installed_releases_satisfy_a_pin_made_from_them_bare_or_as_specifiers():
    here = installed_libraries()
    assert set(here) == set(RUN_LIBRARIES)  # every library that decides the numerics is installed here
    check_libraries(here)
    check_libraries({name: f"=={Version(v).major}.{Version(v).minor}.*" for name, v in here.items()})
    check_libraries({name: f">={v}" for name, v in here.items()})
    check_libraries({})
    check_libraries(None)


def test_a_wrong_or_missing_release_is_refused_in_one_line_naming_each_and_what_to_install():
    torch = importlib.metadata.version("torch")
    with pytest.raises(LibraryMismatchError) as caught:
        check_libraries({"torch": "0.0.1", "trl": installed_libraries()["trl"], "no-such-dist-hivetune": "==1.0"})
    message = str(caught.value)
    assert "\n" not in message
    assert f"torch==0.0.1 (installed: {torch})" in message
    assert "no-such-dist-hivetune==1.0 (not installed)" in message
    assert "trl" not in message  # the one that matches is not named
    assert "pip install 'no-such-dist-hivetune==1.0' 'torch==0.0.1'" in message


def test_a_cuda_build_counts_as_its_release_and_a_patch_release_does_not(monkeypatch):
    fake_versions(monkeypatch, {"torch": "2.13.0+cu128"})
    check_libraries({"torch": "2.13.0"})
    check_libraries({"torch": "==2.13.*"})
    assert installed_libraries(["torch"]) == {"torch": "2.13.0"}  # the pin drops the local build label
    fake_versions(monkeypatch, {"torch": "2.13.1"})
    with pytest.raises(LibraryMismatchError, match=r"torch==2\.13\.0 \(installed: 2\.13\.1\)"):
        check_libraries({"torch": "2.13.0"})
    check_libraries({"torch": "~=2.13.0"})
    fake_versions(monkeypatch, {"torch": "my-own-build"})  # not PEP 440: refused, not a traceback
    with pytest.raises(LibraryMismatchError, match=r"torch==2\.13\.0 \(installed: my-own-build\)"):
        check_libraries({"torch": "2.13.0"})
    assert installed_libraries(["torch"]) == {"torch": "my-own-build"}


def test_a_malformed_pin_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match=r"^model\.libraries\.torch: 'latest' is neither a version nor a PEP 440"):
        run_spec_from_dict({"model": {"libraries": {"torch": "latest"}}})
    with pytest.raises(ConfigError, match=r"model\.libraries\.torch=2\.13: expected str"):  # unquoted YAML float
        run_spec_from_dict({"model": {"libraries": {"torch": 2.13}}})
    with pytest.raises(ConfigError, match=r"model\.libraries: expected a mapping, got list"):
        run_spec_from_dict({"model": {"libraries": ["torch"]}})


def test_the_pins_are_part_of_the_run_id_and_of_what_the_base_is_loaded_with():
    plain = run_spec_from_dict({})
    pinned = run_spec_from_dict({"model": {"libraries": {"torch": "2.13.0"}}})
    assert plain.model.libraries == {} and plain.model.pins["libraries"] == {}
    assert pinned.model.pins["libraries"] == {"torch": "2.13.0"}
    assert pinned.run_id != plain.run_id  # peers with other pins are in another run
    assert pinned.canonical()["model"]["libraries"] == {"torch": "2.13.0"}


def test_load_pinned_base_refuses_an_off_spec_release_before_it_touches_the_base(monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the base was looked up before the releases were checked")

    monkeypatch.setattr(base_models, "verify_base_model", must_not_run)
    pins = run_spec_from_dict({"model": {"libraries": {"transformers": "==1.0.0"}}}).model.pins
    with pytest.raises(LibraryMismatchError, match=r"transformers==1\.0\.0 \(installed: "):
        load_pinned_base(**pins)


@pytest.mark.parametrize("path", sorted((ROOT / "recipes" / "runs").glob("*.yaml")), ids=lambda p: p.stem)
def test_the_shipped_run_specs_pin_exactly_the_tested_releases_of_constraints_txt(path):
    """`make lock` rewrites constraints.txt after an upgrade: a run spec left on the old releases fails here."""
    tested = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep:
            tested[name.strip().lower()] = version.strip()
    spec = load_run_spec(path)
    assert spec.model.libraries == {name: tested[name] for name in RUN_LIBRARIES}
    assert yaml.safe_load(path.read_text())["model"]["libraries"]["torch"] == tested["torch"]


def test_join_refuses_an_off_spec_release_in_one_line_before_any_network(tmp_path):
    raw = yaml.safe_load((ROOT / "recipes" / "runs" / "arith_tiny.yaml").read_text())
    raw["model"]["libraries"] = {**raw["model"]["libraries"], "torch": "0.0.1"}
    spec = tmp_path / "run.yaml"
    spec.write_text(yaml.safe_dump(raw))
    done = subprocess.run(
        [sys.executable, "-m", "coordination.cli.app", "join", "--run", str(spec), "--initial-peers", UNREACHABLE,
         "--output-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: the run pins torch==0.0.1 (installed: "), done.stderr
    assert "Traceback" not in done.stderr
    assert "initial peer" not in done.stderr  # refused before it dialed anyone


CHILD = """
from coordination.cli import app as cli
from trainer.base_models import BaseModelMismatchError
def off_spec_base():
    raise BaseModelMismatchError("base 'tiny' has CID bafyA but the spec pins bafyB: use the run's base model")
cli.app = off_spec_base
cli.main()
"""


def test_a_trainer_input_error_reaching_the_cli_is_one_line_and_exit_2_not_a_traceback():
    """`hivetune join` against a base whose CID is not the run's printed a traceback (the peer loads the base after
    it joined the DHT, inside the command)."""
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: base 'tiny' has CID bafyA but the spec pins bafyB: use the run's base model"
    )
