"""Where a peer keeps its signed receipts and rollout records, and how a validator reads them.

`RolloutDirectory` is the local-directory form (one folder per run/epoch/peer with
`receipt.json` and `records.jsonl`); it is the fallback the tests use and what the P2P
handler in `coordination.attest.p2p_serving` serves from. Records come back with their Merkle
proofs so the reader can check each one against the receipt's root.

    store = RolloutDirectory("outputs/rollouts")
    store.put(signed_receipt, records)
    store.records_with_proofs(run_id_hex, epoch, peer)    # -> [(RolloutRecord, [bytes32, ...]), ...]
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from eth_utils import to_checksum_address

from coordination.attest.receipts import SignedReceipt
from coordination.attest.records import MalformedRecord, RolloutRecord, records_to_jsonl, rollouts_tree
from coordination.errors import AttestationError

logger = logging.getLogger(__name__)


class RecordsUnavailable(AttestationError):
    """A peer's rollout records for an epoch could not be fetched."""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def records_with_proofs(records: Sequence[RolloutRecord]) -> list[tuple[RolloutRecord, list[bytes]]]:
    tree = rollouts_tree(records)
    return [(r, tree.proof(i)) for i, r in enumerate(records)]


class RolloutDirectory:
    """Receipts and records on disk, keyed by (run id hex, epoch, peer)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _dir(self, run_id_hex: str, epoch: int, peer: str) -> Path:
        if len(run_id_hex) != 64 or any(c not in "0123456789abcdefABCDEF" for c in run_id_hex):
            raise RecordsUnavailable(f"run id {run_id_hex[:80]!r} is not 32 bytes of hex")
        return self.root / run_id_hex / f"epoch-{int(epoch)}" / to_checksum_address(peer)

    def put(
        self,
        signed: SignedReceipt,
        records: Sequence[RolloutRecord],
        *,
        run_id_hex: str | None = None,
        epoch: int | None = None,
    ) -> Path:
        """Publish the receipt and records under its own run and epoch, or under `run_id_hex`/`epoch` (a replay)."""
        r = signed.receipt
        folder = self._dir(run_id_hex or r.run_id.hex(), r.epoch if epoch is None else epoch, r.peer)
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomic(folder / "records.jsonl", records_to_jsonl(records))
        _write_atomic(folder / "receipt.json", json.dumps(signed.to_json(), sort_keys=True))
        return folder

    def receipts(self, run_id_hex: str, epoch: int) -> list[SignedReceipt]:
        folder = self.root / run_id_hex / f"epoch-{int(epoch)}"
        paths = sorted(folder.glob("*/receipt.json")) if folder.exists() else []
        out = []
        for p in paths:
            try:
                out.append(SignedReceipt.from_json(json.loads(p.read_text())))
            except (ValueError, AttestationError) as exc:  # one bad file never hides the others
                logger.warning(f"skipping malformed receipt {p}: {exc}")
        return out

    def records(self, run_id_hex: str, epoch: int, peer: str) -> list[RolloutRecord]:
        path = self._dir(run_id_hex, epoch, peer) / "records.jsonl"
        if not path.exists():
            raise RecordsUnavailable(f"no rollout records of {peer} for epoch {epoch} under {self.root}")
        try:
            return [RolloutRecord.from_json(json.loads(line)) for line in path.read_text().splitlines() if line]
        except ValueError as exc:
            raise MalformedRecord(f"rollout records of {peer} for epoch {epoch}: {exc}") from exc

    def records_with_proofs(self, run_id_hex: str, epoch: int, peer: str):
        return records_with_proofs(self.records(run_id_hex, epoch, peer))

    def fetch(self, signed: SignedReceipt):
        """A validator's record fetcher: the records (with proofs) stored for the receipt's own run, epoch and peer."""
        r = signed.receipt
        return self.records_with_proofs(r.run_id.hex(), r.epoch, r.peer)
