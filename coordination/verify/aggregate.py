"""Aggregate validators' verdict reports into one ruling per receipt: by *stake*, never by signer count.

Every verdict is checked before it counts: its EIP-712 signature must recover to the validator it names,
that validator must hold weight at the period's stake snapshot (`stakes`), the receipt it rules on must
be the one carried in the report, signed by its own peer. A validator that signed two different rulings
on one receipt counts for neither. Then, per (receipt, epoch):

1. FRAUD stands when the validators citing *reproducible* FRAUD evidence on it hold `required` stake and
   more stake than those that ACCEPTED it. Evidence of any record and any fraud kind on the same receipt
   adds up (a peer cheating on every record cannot escape because each validator cites another one);
   the ruling's kind is the one with the most stake behind it. "Reproducible" is `recheck(receipt,
   evidence) -> bool`, the signing validator's own re-run of the cited check (deterministic against the
   canonical checkpoint), so a validator never co-signs a FRAUD ruling it cannot reproduce.
2. else ACCEPTED with `required` stake is accepted (paid);
3. else REJECTED with `required` stake is rejected (unpaid, not slashed);
4. else UNDECIDED (unpaid, not slashed).

    outcomes = rulings(load_reports(paths), domain, stakes={addr: stake_at_snapshot}, required=7,
                       recheck=lambda receipt, ev: validator.confirms(receipt, ev.finding, ev.epoch))
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from eth_utils import to_checksum_address

from coordination.attest.receipts import SignedReceipt
from coordination.errors import AttestationError
from coordination.verify.reconcile import ReceiptOutcome
from coordination.verify.verdicts import Finding, Kind, SignedVerdict, Status, Verdict

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CitedEvidence:
    """What a FRAUD verdict cites: the epoch it was audited for and the finding (kind, slot, generation)."""

    epoch: int
    finding: Finding


Recheck = Callable[[SignedReceipt, CitedEvidence], bool]


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


def _checked(reports, domain: dict, stakes: Mapping[str, int]):
    for report in reports:
        for v in report.get("verdicts", []):
            try:
                signed, sv = parse_verdict(v, domain)
            except AttestationError as exc:
                logger.warning(f"ignoring a verdict of {v.get('validator')}: {exc}")
                continue
            if stakes.get(to_checksum_address(v["validator"]), 0) > 0:
                yield signed, sv


def _one_per_validator(group: list[SignedVerdict], domain: dict) -> dict[str, SignedVerdict]:
    """signer -> its verdict; a signer with two different rulings on the receipt is dropped (equivocation)."""
    by_signer: dict[str, list[SignedVerdict]] = defaultdict(list)
    for sv in group:
        by_signer[sv.signer(domain)].append(sv)
    out = {}
    for signer, verdicts in by_signer.items():
        rulings_of = {(v.verdict.status, v.verdict.kind, v.verdict.evidence) for v in verdicts}
        if len(rulings_of) == 1:
            out[signer] = verdicts[0]
        else:
            logger.warning(f"validator {signer} signed {len(rulings_of)} different rulings on one receipt; ignored")
    return out


def _heaviest_kind(verdicts: dict[str, SignedVerdict], stakes: Mapping[str, int]) -> Kind:
    weight: dict[Kind, int] = defaultdict(int)
    for signer, sv in verdicts.items():
        weight[sv.verdict.kind] += stakes[signer]
    return min(weight, key=lambda k: (-weight[k], int(k)))


def _ruling(signed, epoch: int, group, domain: dict, stakes, required: int, recheck) -> ReceiptOutcome:
    votes = _one_per_validator(group, domain)

    def weight(vs) -> int:
        return sum(stakes[s] for s in vs)

    def reproducible(sv: SignedVerdict) -> bool:
        return recheck is None or bool(recheck(signed, CitedEvidence(epoch, sv.verdict.finding)))

    accepted = {s: v for s, v in votes.items() if v.verdict.status == Status.ACCEPTED}
    fraud = {s: v for s, v in votes.items() if v.verdict.status == Status.FRAUD and reproducible(v)}
    rejected = {s: v for s, v in votes.items() if v.verdict.status == Status.REJECTED}
    if weight(fraud) >= required and weight(fraud) > weight(accepted):
        kind = _heaviest_kind(fraud, stakes)
        cited = next(v.verdict.finding for s, v in sorted(fraud.items()) if v.verdict.kind == kind)
        return ReceiptOutcome(signed, epoch, Status.FRAUD, cited, list(fraud.values()))
    if weight(accepted) >= required:
        return ReceiptOutcome(signed, epoch, Status.ACCEPTED, None, list(accepted.values()))
    if weight(rejected) >= required:
        kind = _heaviest_kind(rejected, stakes)
        cited = next(v.verdict.finding for s, v in sorted(rejected.items()) if v.verdict.kind == kind)
        return ReceiptOutcome(signed, epoch, Status.REJECTED, cited, list(rejected.values()))
    return ReceiptOutcome(
        signed, epoch, Status.REJECTED, Finding(Kind.NONE, "undecided: no stake quorum"), list(votes.values())
    )


def rulings(
    reports, domain: dict, *, stakes: Mapping[str, int], required: int, recheck: Recheck | None = None
) -> list[ReceiptOutcome]:
    """One outcome per receipt that a staked validator ruled on, sorted by (epoch, peer).

    `stakes`: validator -> weight at the period's snapshot (`StakingClient.validator_stakes_at`);
    `required`: the weight a ruling needs (`StakingClient.required_quorum_stake_at(snapshot)`).
    """
    if required <= 0:
        raise ValueError(f"required={required}: a ruling needs positive stake (read requiredQuorumStakeAt)")
    stakes = {to_checksum_address(a): int(s) for a, s in stakes.items() if int(s) > 0}
    receipts, groups = {}, defaultdict(list)
    for signed, sv in _checked(reports, domain, stakes):
        key = (sv.verdict.receipt, sv.verdict.epoch)  # a receipt republished under another epoch is another case
        receipts[key] = signed
        groups[key].append(sv)
    outcomes = [_ruling(receipts[k], k[1], groups[k], domain, stakes, required, recheck) for k in groups]
    return sorted(outcomes, key=lambda o: (o.epoch, o.peer))


def equal_stakes(validators, stake: int = 1) -> tuple[dict[str, int], int]:
    """(stakes, required) for `validators` with equal weight and a 2/3 quorum (tests and offline runs)."""
    stakes = {to_checksum_address(a): stake for a in validators}
    total = sum(stakes.values())
    return stakes, max(1, -(-total * 6_667 // 10_000))
