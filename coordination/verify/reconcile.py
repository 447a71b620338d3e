"""Validators agree on each receipt: every finding is re-checked by the others before it counts.

Round 1: each validator audits every receipt with its own unpredictable draw. Round 2: every
finding any validator made is re-run by all the others on the cited record (`Validator.confirms`,
the deterministic re-check); a finding reproduced by validators holding `required` stake (at the
period's snapshot) becomes the receipt's outcome, and each of them signs a verdict carrying it;
otherwise the receipt is accepted and all sign ACCEPTED (so a dishonest or buggy minority by stake
can neither get an honest peer unpaid nor save a cheater). Weight is stake, never a signer count.

    outcomes = reconcile_epoch(validators, receipts, epoch=3, stakes={addr: stake}, required=4001)
    outcomes[0].status, outcomes[0].finding, outcomes[0].verdicts
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from coordination.attest.receipts import SignedReceipt
from coordination.verify.validator import Validator
from coordination.verify.verdicts import Finding, SignedVerdict, Status


def slash_evidence(receipt_digest: bytes, kind: int) -> bytes:
    """The evidence hash `Staking.slash` consumes once: keccak(abi.encode(bytes32 receipt, uint8 kind))."""
    return keccak(encode(["bytes32", "uint8"], [bytes(receipt_digest), int(kind)]))


@dataclass
class ReceiptOutcome:
    """The agreed ruling on one receipt, with every validator's signed verdict."""

    receipt: SignedReceipt
    epoch: int
    status: Status
    finding: Finding | None
    verdicts: list[SignedVerdict] = field(default_factory=list)

    @property
    def peer(self) -> str:
        return self.receipt.receipt.peer

    def evidence(self, domain: dict) -> bytes:
        """32-byte slash evidence keyed on (receipt, kind): keccak(abi.encode(receipt digest, kind)).

        Not on the cited record: any reproducible evidence of the same kind on the same receipt is the same
        case, so a receipt is slashed at most once per kind however many records validators cite.
        """
        assert self.finding is not None, "only a ruled-against receipt has evidence"
        return slash_evidence(self.receipt.receipt.digest(domain), int(self.finding.kind))

    def signers(self, domain: dict) -> list[str]:
        return [v.signer(domain) for v in self.verdicts]


def _confirmed(validators: Sequence[Validator], signed, finding: Finding, finder: Validator, epoch: int):
    return [v for v in validators if v is finder or v.confirms(signed, finding, epoch)]


def reconcile_receipt(
    validators: Sequence[Validator], signed: SignedReceipt, epoch: int, stakes: Mapping[str, int], required: int
):
    findings = [(v, v.find(signed, epoch)) for v in validators]
    for finder, finding in findings:
        if finding is None:
            continue
        agreeing = _confirmed(validators, signed, finding, finder, epoch)
        if sum(stakes.get(v.account.address, 0) for v in agreeing) >= required:
            return ReceiptOutcome(
                signed, epoch, finding.status, finding, [v.sign(signed, finding, epoch) for v in agreeing]
            )
    return ReceiptOutcome(signed, epoch, Status.ACCEPTED, None, [v.sign(signed, None, epoch) for v in validators])


def reconcile_epoch(
    validators: Sequence[Validator],
    receipts: Sequence[SignedReceipt],
    *,
    epoch: int,
    stakes: Mapping[str, int],
    required: int,
) -> list[ReceiptOutcome]:
    """One agreed outcome per receipt published for `epoch`; `stakes`/`required` as at the period's snapshot."""
    stakes = {to_checksum_address(a): int(w) for a, w in stakes.items()}
    total = sum(stakes.get(v.account.address, 0) for v in validators)
    if not 0 < required <= total:
        raise ValueError(f"required={required} must be positive and at most the validators' stake ({total})")
    return [reconcile_receipt(validators, r, epoch, stakes, required) for r in receipts]
