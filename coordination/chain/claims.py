"""Claim tickets: what a peer needs to claim its reward for one period (`hivetune claim --claim-file`).

The aggregator that settles a period writes one ticket per peer from the period's Merkle tree:

    tree = StandardMerkleTree.of([(peer, units), ...], LEAF_TYPES)
    for i in range(len(tree.values)):
        ClaimTicket.from_tree(run_id, period, tree, i).save(f"claims/{period}/{peer}.json")

File format (JSON): {"runId": "<run id string or 0x bytes32>", "period": int, "peer": "0x...",
"units": int, "proof": ["0x<32 bytes>", ...]}. Units are integers (JSON numbers or decimal strings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eth_utils import is_address, to_checksum_address

from coordination.chain.merkle import StandardMerkleTree, leaf_hash, verify_proof
from coordination.errors import ConfigError

LEAF_TYPES = ("address", "uint256")


@dataclass(frozen=True)
class ClaimTicket:
    run_id: str
    period: int
    peer: str
    units: int
    proof: tuple[bytes, ...]

    @classmethod
    def from_tree(cls, run_id: str, period: int, tree: StandardMerkleTree, index: int) -> ClaimTicket:
        peer, units = tree.values[index]
        return cls(run_id, period, to_checksum_address(peer), int(units), tuple(tree.proof(index)))

    def verifies_against(self, root: bytes) -> bool:
        """Off-chain check that the claim will pass the ledger's proof check."""
        return verify_proof(root, leaf_hash(LEAF_TYPES, [self.peer, self.units]), self.proof)

    def to_json(self) -> dict:
        return {
            "runId": self.run_id,
            "period": self.period,
            "peer": self.peer,
            "units": self.units,
            "proof": ["0x" + p.hex() for p in self.proof],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClaimTicket:
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
            ticket = cls(
                str(raw["runId"]),
                int(raw["period"]),
                str(raw["peer"]),
                int(raw["units"]),
                tuple(bytes.fromhex(p.removeprefix("0x")) for p in raw["proof"]),
            )
        except FileNotFoundError:
            raise ConfigError(f"no claim file at {path}; ask the run's aggregator for your claim file") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"{path} is not a claim file ({exc!r}); it needs runId, period, peer, units, proof"
            ) from exc
        if not is_address(ticket.peer) or any(len(p) != 32 for p in ticket.proof):
            raise ConfigError(f"{path}: peer must be an address and each proof entry 32 bytes of hex")
        return ticket
