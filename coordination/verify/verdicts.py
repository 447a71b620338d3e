"""Signed verdicts: one validator's ruling on one work receipt, as EIP-712 typed data.

`Finding` is what an audit found (kind + the slot/generation it concerns + a detail line);
`Verdict` is the signed ruling: ACCEPTED, REJECTED (unpaid; not attributable or not
conclusive: bad signature, wrong epoch/run, records unavailable) or FRAUD (conclusive: the
peer's own signed root commits to records that recomputation contradicts; slashable).

    verdict = Verdict.of(receipt_digest, receipt, finding=None, epoch=3)
    signed = sign_verdict(verdict, acct.key, domain)
    signed.signer(domain)
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass

from eth_utils import keccak, to_checksum_address

from coordination.attest.typed_data import recover_struct_signer, sign_struct


class Status(enum.IntEnum):
    ACCEPTED = 0
    REJECTED = 1
    FRAUD = 2


class Kind(enum.IntEnum):
    NONE = 0
    BAD_SIGNATURE = 1
    WRONG_RUN = 2
    WRONG_EPOCH = 3
    WRONG_CHECKPOINT = 4
    RECORDS_UNAVAILABLE = 5
    RECORD_NOT_IN_ROOT = 6
    COUNT_MISMATCH = 7
    WRONG_PROMPT = 8
    WRONG_REWARD = 9
    WRONG_LOGPROBS = 10
    FABRICATED_COMPLETION = 11
    NOT_IN_ROUND = 12  # the receipt's gradient contribution is not part of the epoch's canonical round (unpaid)
    MALFORMED_RECORD = 13  # a served record or receipt does not parse (unpaid, not attributable)


# conclusive: the peer signed a root whose records recomputation contradicts
FRAUD_KINDS = frozenset(
    {Kind.COUNT_MISMATCH, Kind.WRONG_PROMPT, Kind.WRONG_REWARD, Kind.WRONG_LOGPROBS, Kind.FABRICATED_COMPLETION}
)

VERDICT_FIELDS = (
    ("runId", "bytes32"),
    ("epoch", "uint64"),
    ("peer", "address"),
    ("receipt", "bytes32"),
    ("status", "uint8"),
    ("kind", "uint8"),
    ("evidence", "bytes32"),
)


@dataclass(frozen=True)
class Finding:
    """A failed check: which kind, on which record (slot, generation), and a human-readable detail."""

    kind: Kind
    detail: str
    slot: int = -1
    generation: int = -1

    def digest(self) -> bytes:
        body = {"kind": int(self.kind), "slot": self.slot, "generation": self.generation, "detail": self.detail}
        return keccak(json.dumps(body, sort_keys=True).encode())

    @property
    def status(self) -> Status:
        return Status.FRAUD if self.kind in FRAUD_KINDS else Status.REJECTED


@dataclass(frozen=True)
class Verdict:
    run_id: bytes
    epoch: int
    peer: str
    receipt: bytes  # the receipt's EIP-712 digest
    status: Status
    kind: Kind
    evidence: bytes  # digest of the Finding (zero when accepted)
    finding: Finding | None = None

    @classmethod
    def of(cls, receipt_digest: bytes, receipt, finding: Finding | None, *, epoch: int | None = None) -> Verdict:
        """The verdict on `receipt` as published for `epoch` (default: the receipt's own epoch).

        The epoch is the one audited, so a copy of a good receipt republished under another epoch is
        ruled on separately and cannot cancel the original's acceptance.
        """
        epoch = receipt.epoch if epoch is None else int(epoch)
        if finding is None:
            return cls(receipt.run_id, epoch, receipt.peer, receipt_digest, Status.ACCEPTED, Kind.NONE, b"\x00" * 32)
        return cls(
            receipt.run_id,
            epoch,
            receipt.peer,
            receipt_digest,
            finding.status,
            finding.kind,
            finding.digest(),
            finding,
        )

    def message(self) -> dict:
        return {
            "runId": self.run_id,
            "epoch": self.epoch,
            "peer": to_checksum_address(self.peer),
            "receipt": self.receipt,
            "status": int(self.status),
            "kind": int(self.kind),
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class SignedVerdict:
    verdict: Verdict
    signature: bytes

    def signer(self, domain: dict) -> str:
        return recover_struct_signer(domain, "Verdict", VERDICT_FIELDS, self.verdict.message(), self.signature)


def sign_verdict(verdict: Verdict, private_key, domain: dict) -> SignedVerdict:
    return SignedVerdict(verdict, sign_struct(private_key, domain, "Verdict", VERDICT_FIELDS, verdict.message()))
