"""The layering of DESIGN.md is enforced: the import-linter contracts in pyproject.toml hold on this tree,
and the same contracts catch each kind of violation in a planted tree."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` over the packages under `root` (PYTHONPATH=root, so it never reads another checkout)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [str(LINT_IMPORTS), "--no-cache"]  # reads root/pyproject.toml (cwd)
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_tree_keeps_every_layering_contract():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert {c["id"] for c in contracts} == {"layers", "cli-modules"}
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_the_contracts_catch_each_kind_of_violation(tmp_path):
    files = {
        "trainer/__init__.py": "",
        "trainer/grpo.py": "import coordination.swarm\n",  # trainer -> coordination: broken
        "coordination/__init__.py": "",
        "coordination/swarm.py": "import trainer.grpo\n",  # coordination -> trainer: allowed
        "coordination/verify.py": "import recipes.single_peer\n",  # coordination -> recipes: broken
        "coordination/cli/__init__.py": "",
        "coordination/cli/options.py": "",
        "coordination/cli/chain_cmds.py": "import coordination.cli.options\n",  # allowed
        "coordination/cli/swarm_cmds.py": "import coordination.cli.options\nimport coordination.cli.chain_cmds\n",
        "recipes/__init__.py": "",
        "recipes/single_peer.py": "import coordination.cli.options\nimport trainer.grpo\n",  # allowed
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    done = lint_imports(tmp_path)
    out = " ".join(done.stdout.split())  # import-linter wraps long lines
    assert done.returncode == 1 and "Contracts: 0 kept, 2 broken." in out, out
    assert "trainer.grpo -> coordination.swarm" in out
    assert "coordination.verify -> recipes.single_peer" in out
    assert "coordination.cli.swarm_cmds -> coordination.cli.chain_cmds" in out
    assert "coordination.cli.chain_cmds -> coordination.cli.options" not in out


def test_the_default_rpc_url_is_written_once():
    """Every command and the run spec read `coordination.chain.connect.DEFAULT_RPC`; no module keeps its own copy."""
    sources = [p for package in ("trainer", "coordination", "recipes") for p in (ROOT / package).rglob("*.py")]
    holders = [str(p.relative_to(ROOT)) for p in sources if "127.0.0.1:8545" in p.read_text()]
    assert holders == ["coordination/chain/connect.py"]
