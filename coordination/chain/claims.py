"""Claim tickets, the one claim-file model: what a peer needs to claim one period (`hivetune claim --claim-file`).

The aggregator that settles a period writes one ticket per peer (`tickets_for` + `write_claim_files`);
`ClaimTicket.load` parses one and checks that its proof leads to its root before any gas is spent.

File format (JSON, `<peer>-period<N>.json`):

    {"runId": "0x<bytes32>", "period": 0, "firstEpoch": 0, "lastEpoch": 9, "peer": "0x..", "units": 120,
     "proof": ["0x<32 bytes>", ...], "root": "0x..", "totalUnits": 480, "reward": 1000, "snapshot": 1700000000,
     "chainId": 31337, "ledger": "0x.."}

Units are integers (JSON numbers or decimal strings); `runId` may also be the run id string.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from coordination.chain.eip712 import PeriodSettlement, run_key
from coordination.chain.merkle import StandardMerkleTree, leaf_hash, verify_proof
from coordination.errors import ConfigError

LEAF_TYPES = ("address", "uint256")


class BadClaimFile(ConfigError):
    """A claim file is missing fields, or its proof does not lead to its root."""


@dataclass(frozen=True)
class ClaimTicket:
    run_key: bytes
    period: int
    peer: str
    units: int
    proof: tuple[bytes, ...]
    root: bytes
    total_units: int
    reward: int
    first_epoch: int
    last_epoch: int
    snapshot: int
    chain_id: int
    ledger: str

    @property
    def run_id(self) -> bytes:
        return self.run_key

    @property
    def amount(self) -> int:
        """What `ContributionLedger.claim` pays: floor(reward * units / totalUnits)."""
        return self.reward * self.units // self.total_units

    def verifies_against(self, root: bytes) -> bool:
        """Off-chain check that the claim will pass the ledger's proof check."""
        return verify_proof(root, leaf_hash(LEAF_TYPES, [self.peer, self.units]), self.proof)

    def to_json(self) -> dict:
        return {
            "runId": "0x" + self.run_key.hex(),
            "period": self.period,
            "firstEpoch": self.first_epoch,
            "lastEpoch": self.last_epoch,
            "peer": self.peer,
            "units": self.units,
            "proof": ["0x" + p.hex() for p in self.proof],
            "root": "0x" + self.root.hex(),
            "totalUnits": self.total_units,
            "reward": self.reward,
            "snapshot": self.snapshot,
            "chainId": self.chain_id,
            "ledger": self.ledger,
        }

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClaimTicket:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            ticket = cls(
                run_key(raw["runId"]),
                int(raw["period"]),
                to_checksum_address(raw["peer"]) if is_address(raw["peer"]) else str(raw["peer"]),
                int(raw["units"]),
                tuple(bytes.fromhex(p.removeprefix("0x")) for p in raw["proof"]),
                bytes.fromhex(raw["root"].removeprefix("0x")),
                int(raw["totalUnits"]),
                int(raw["reward"]),
                int(raw["firstEpoch"]),
                int(raw["lastEpoch"]),
                int(raw["snapshot"]),
                int(raw["chainId"]),
                str(raw["ledger"]),
            )
        except FileNotFoundError:
            raise BadClaimFile(f"no claim file at {path}; ask the run's aggregator for your claim file") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise BadClaimFile(
                f"{path} is not a claim file ({exc!r}); it needs runId, period, firstEpoch, lastEpoch, peer, units, "
                "proof, root, totalUnits, reward, snapshot, chainId, ledger"
            ) from exc
        if not is_address(ticket.peer) or any(len(p) != 32 for p in ticket.proof) or len(ticket.root) != 32:
            raise BadClaimFile(f"{path}: peer must be an address and root and each proof entry 32 bytes of hex")
        if not ticket.verifies_against(ticket.root):
            raise BadClaimFile(f"{path}: proof does not lead to root 0x{ticket.root.hex()}; the file is corrupt")
        return ticket


def tickets_for(
    settlement: PeriodSettlement, tree: StandardMerkleTree, *, chain_id: int, ledger: str
) -> list[ClaimTicket]:
    """One ticket per leaf of the settled period's tree."""
    s = settlement
    out = []
    for i, (peer, units) in enumerate(tree.values):
        out.append(
            ClaimTicket(
                s.run_id,
                s.period,
                to_checksum_address(peer),
                int(units),
                tuple(tree.proof(i)),
                bytes(tree.root),
                s.total_units,
                s.reward,
                s.first_epoch,
                s.last_epoch,
                s.snapshot,
                chain_id,
                to_checksum_address(ledger),
            )
        )
    return out


def write_claim_files(tickets: Iterable[ClaimTicket], out_dir: str | Path) -> list[Path]:
    """One `<peer>-period<N>.json` per ticket, written atomically."""
    out = Path(out_dir)
    return [t.save(out / f"{t.peer}-period{t.period}.json") for t in tickets]
