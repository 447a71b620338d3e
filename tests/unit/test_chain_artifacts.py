"""The committed contract artifacts are fresh: their recorded source hashes match contracts/src.

Each artifact lists every source file solc saw (`sources`: path -> sha256) and a `sourceHash` over
those lines plus the compiler settings (see contracts/compile.js). Our own `src/*.sol` are always
checked; the OpenZeppelin files are checked when `contracts/node_modules` is installed (`make setup`
runs `npm ci`, so in CI they are), and their pinned version is checked against package.json.
"""

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from coordination.chain.artifacts import CONTRACT_NAMES, artifacts_dir, contracts_dir, load_artifact

CONTRACTS = contracts_dir()
NODE_MODULES = CONTRACTS / "node_modules"
HAS_NODE = shutil.which("node") is not None and (NODE_MODULES / "solc").is_dir()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_file(source_path: str) -> Path:
    return CONTRACTS / source_path if source_path.startswith("src/") else NODE_MODULES / source_path


def raw(name: str) -> dict:
    return json.loads((artifacts_dir() / f"{name}.json").read_text())


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_artifact_source_hash_matches_its_recorded_sources(name):
    art = raw(name)
    lines = "".join(f"{p} {h}\n" for p, h in sorted(art["sources"].items()))
    settings = json.dumps(art["settings"], separators=(",", ":"))
    assert hashlib.sha256((lines + settings).encode()).hexdigest() == art["sourceHash"]
    assert art["settings"] == {"evmVersion": "cancun", "optimizer": {"enabled": True, "runs": 200}}
    assert art["solcVersion"].startswith("0.8.28+")


@pytest.mark.parametrize("name", CONTRACT_NAMES)
def test_artifact_is_not_stale_against_contracts_src(name):
    art = raw(name)
    own = {p: h for p, h in art["sources"].items() if p.startswith("src/")}
    on_disk = {f"src/{f.name}": sha256_file(f) for f in sorted((CONTRACTS / "src").glob("*.sol"))}
    assert own == on_disk, f"{name}.json is stale against contracts/src: run `make contracts` and commit artifacts"


@pytest.mark.skipif(not NODE_MODULES.is_dir(), reason="contracts/node_modules not installed (run `make setup`)")
def test_openzeppelin_sources_match_the_installed_pinned_version():
    pinned = json.loads((CONTRACTS / "package.json").read_text())["dependencies"]["@openzeppelin/contracts"]
    installed = json.loads((NODE_MODULES / "@openzeppelin/contracts/package.json").read_text())["version"]
    assert installed == pinned
    for p, h in raw("RunGovernor")["sources"].items():
        if not p.startswith("src/"):
            assert sha256_file(source_file(p)) == h, f"{p} differs from the compiled one: run `make contracts`"


def test_artifacts_load_with_abi_and_bytecode():
    for name in CONTRACT_NAMES:
        art = load_artifact(name)
        assert len(bytes.fromhex(art.bytecode[2:])) > len(bytes.fromhex(art.deployed_bytecode[2:])) > 1000
        assert any(e["type"] == "function" for e in art.abi)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_NODE, reason="needs node + contracts/node_modules (run `make setup`)")
def test_compiling_again_reproduces_the_committed_bytecode(tmp_path):
    env = {**os.environ, "ARTIFACTS_OUT": str(tmp_path)}
    subprocess.run(["node", "compile.js"], cwd=CONTRACTS, env=env, check=True, capture_output=True, timeout=120)
    for name in CONTRACT_NAMES:
        fresh = json.loads((tmp_path / f"{name}.json").read_text())
        assert fresh == raw(name), f"{name}: recompiled artifact differs from the committed one"
