"""Compiled contract artifacts (ABI + bytecode) read from `contracts/artifacts/<Name>.json`.

The artifacts are committed, so Python users need no Node.js. `make contracts` regenerates them;
`tests/unit/test_chain_artifacts.py` fails when they are stale against `contracts/src`.

    load_artifact("Staking").abi
    error_abis()          # every custom error of every contract (for revert decoding)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from coordination.errors import ChainError

CONTRACT_NAMES = ("HiveToken", "Staking", "ContributionLedger", "CheckpointRegistry", "RunTimelock", "RunGovernor")
ARTIFACTS_ENV = "HIVETUNE_ARTIFACTS"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list
    bytecode: str
    deployed_bytecode: str
    solc_version: str
    source_hash: str
    sources: dict


def contracts_dir() -> Path:
    """`contracts/` of this checkout (two levels above coordination/chain/)."""
    return Path(__file__).resolve().parents[2] / "contracts"


def artifacts_dir() -> Path:
    """`$HIVETUNE_ARTIFACTS` if set, else `contracts/artifacts` of this checkout."""
    return Path(os.environ.get(ARTIFACTS_ENV) or contracts_dir() / "artifacts")


@cache
def load_artifact(name: str) -> Artifact:
    path = artifacts_dir() / f"{name}.json"
    if not path.is_file():
        raise ChainError(f"contract artifact {path} is missing: run `make contracts` (or set ${ARTIFACTS_ENV})")
    raw = json.loads(path.read_text())
    return Artifact(
        name=raw["contractName"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        deployed_bytecode=raw["deployedBytecode"],
        solc_version=raw["solcVersion"],
        source_hash=raw["sourceHash"],
        sources=raw["sources"],
    )


@cache
def error_abis() -> tuple[dict, ...]:
    """All custom-error ABI entries of all contracts, deduplicated by signature.

    A revert can bubble up from a contract called by the one we called (e.g. Staking's
    `QuorumNotReached` out of `ContributionLedger.submitPeriod`), so decoding uses the union.
    """
    seen: dict[str, dict] = {}
    for name in CONTRACT_NAMES:
        for entry in load_artifact(name).abi:
            if entry["type"] == "error":
                signature = f"{entry['name']}({','.join(i['type'] for i in entry['inputs'])})"
                seen.setdefault(signature, entry)
    return tuple(seen.values())
