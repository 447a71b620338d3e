"""Aggregate validators' verdict reports into one ruling per receipt (what the aggregator settles).

Every verdict is checked before it counts: its EIP-712 signature must recover to the validator it
names, that validator must be registered (`validators`), the receipt it rules on must be the one
carried in the report, signed by its own peer. A ruling against a receipt (FRAUD before REJECTED)
needs `quorum` distinct validators signing the same kind and evidence; otherwise a receipt with
`quorum` ACCEPTED verdicts is accepted; anything else is UNDECIDED (and unpaid).

    outcomes = rulings(load_reports(paths), domain, validators={addr, ...}, quorum=2)
    contribution_table(outcomes)
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

from eth_utils import to_checksum_address

from coordination.attest.receipts import SignedReceipt
from coordination.errors import AttestationError
from coordination.verify.reconcile import ReceiptOutcome
from coordination.verify.verdicts import Finding, Kind, SignedVerdict, Status, Verdict

logger = logging.getLogger(__name__)


def load_reports(paths) -> list[dict]:
    reports = []
    for path in paths:
        try:
            reports.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise AttestationError(
                f"cannot read verdict report {path} ({exc}); rerun `hivetune validate --out`"
            ) from exc
    return reports


def parse_verdict(v: dict, domain: dict) -> tuple[SignedReceipt, SignedVerdict]:
    """(the receipt, the signed verdict) of one report entry; AttestationError when anything does not check out."""
    try:
        signed = SignedReceipt.from_json(v["receipt_json"])
        finding = (
            None
            if v["status"] == Status.ACCEPTED.name
            else Finding(Kind[v["kind"]], v["detail"], int(v["slot"]), int(v["generation"]))
        )
        verdict = Verdict.of(signed.receipt.digest(domain), signed.receipt, finding, epoch=int(v["epoch"]))
        sv = SignedVerdict(verdict, bytes.fromhex(v["signature"][2:]))
    except (KeyError, ValueError, TypeError) as exc:
        raise AttestationError(f"malformed verdict ({exc})") from exc
    if "0x" + verdict.receipt.hex() != v["receipt"] or "0x" + verdict.evidence.hex() != v["evidence"]:
        raise AttestationError("verdict's receipt digest or evidence does not match its content")
    if sv.signer(domain) != to_checksum_address(v["validator"]):
        raise AttestationError(f"verdict not signed by its validator {v['validator']}")
    signed.verify(domain)
    return signed, sv


def _checked(reports, domain: dict, validators: set[str]):
    for report in reports:
        for v in report.get("verdicts", []):
            try:
                signed, sv = parse_verdict(v, domain)
            except AttestationError as exc:
                logger.warning(f"ignoring a verdict of {v.get('validator')}: {exc}")
                continue
            if to_checksum_address(v["validator"]) in validators:
                yield signed, sv


def _ruling(signed, epoch: int, group: list[SignedVerdict], domain: dict, quorum: int) -> ReceiptOutcome:
    by_ruling = defaultdict(dict)
    for sv in group:
        v = sv.verdict
        by_ruling[(v.status, v.kind, v.evidence)][sv.signer(domain)] = sv
    against = sorted(
        (k for k in by_ruling if k[0] != Status.ACCEPTED and len(by_ruling[k]) >= quorum), key=lambda k: -int(k[0])
    )
    if against:
        key = against[0]
        verdicts = list(by_ruling[key].values())
        return ReceiptOutcome(signed, epoch, key[0], verdicts[0].verdict.finding, verdicts)
    accepted = [k for k in by_ruling if k[0] == Status.ACCEPTED and len(by_ruling[k]) >= quorum]
    if accepted:
        return ReceiptOutcome(signed, epoch, Status.ACCEPTED, None, list(by_ruling[accepted[0]].values()))
    return ReceiptOutcome(
        signed, epoch, Status.REJECTED, Finding(Kind.NONE, "undecided: no quorum"), [sv for sv in group]
    )


def rulings(reports, domain: dict, *, validators, quorum: int) -> list[ReceiptOutcome]:
    """One outcome per receipt that any registered validator ruled on, sorted by (epoch, peer)."""
    validators = {to_checksum_address(a) for a in validators}
    receipts, groups = {}, defaultdict(list)
    for signed, sv in _checked(reports, domain, validators):
        key = (sv.verdict.receipt, sv.verdict.epoch)  # a receipt republished under another epoch is another case
        receipts[key] = signed
        groups[key].append(sv)
    outcomes = [_ruling(receipts[k], k[1], groups[k], domain, quorum) for k in groups]
    return sorted(outcomes, key=lambda o: (o.epoch, o.peer))
