"""Rulings on receipts: one validator's signed verdict, and how validators agree on one ruling per receipt.

**Verdicts.** `Finding` is what an audit found (kind + the slot/generation it concerns + a detail line);
`Verdict` is the signed ruling, as EIP-712 typed data: ACCEPTED, REJECTED (unpaid; not attributable or not
conclusive: bad signature, wrong epoch/run, records unavailable) or FRAUD (conclusive: the peer's own signed
root commits to records that recomputation contradicts; slashable). `verdict_json` / `parse_verdict` are a
verdict as a report carries it.

    verdict = Verdict.of(receipt_digest, receipt, finding=None, epoch=3)
    signed = sign_verdict(verdict, acct.key, domain)
    signed.signer(domain)

**In process** (`reconcile_epoch`). Round 1: each validator audits every receipt with its own unpredictable
draw. Round 2: every finding any validator made is re-run by all the others on the cited record
(`Validator.confirms`, the deterministic re-check); a finding reproduced by validators holding `required`
stake (at the period's snapshot) becomes the receipt's outcome, and each of them signs a verdict carrying it;
otherwise the receipt is accepted and all sign ACCEPTED (so a dishonest or buggy minority by stake can neither
get an honest peer unpaid nor save a cheater).

    outcomes = reconcile_epoch(validators, receipts, epoch=3, stakes={addr: stake}, required=4001)
    outcomes[0].status, outcomes[0].finding, outcomes[0].verdicts

**From verdict reports** (`aggregate_reports`): by *stake*, never by signer count. Every verdict is checked
before it counts: its EIP-712 signature must recover to the validator it names, that validator must hold
weight at the period's stake snapshot (`stakes`), the receipt it rules on must be the one carried in the
report, signed by its own peer. A validator that signed two different rulings on one receipt counts for
neither. Then, per (receipt, epoch):

1. FRAUD stands when the validators citing *reproducible* FRAUD evidence on it hold `required` stake and
   more stake than those that ACCEPTED it. Evidence of any record and any fraud kind on the same receipt
   adds up (a peer cheating on every record cannot escape because each validator cites another one);
   the ruling's kind is the one with the most stake behind it. "Reproducible" is `recheck(receipt,
   evidence) -> bool`, the signing validator's own re-run of the cited check (deterministic against the
   canonical checkpoint), so a validator never co-signs a FRAUD ruling it cannot reproduce.
2. else ACCEPTED with `required` stake is accepted (paid);
3. else REJECTED with `required` stake is rejected (unpaid, not slashed);
4. else UNDECIDED (unpaid, not slashed).

    outcomes = aggregate_reports(load_reports(paths), domain, stakes={addr: stake_at_snapshot}, required=7,
                                 recheck=lambda receipt, ev: validator.confirms(receipt, ev.finding, ev.epoch))

The contract's own signature-set rules, off chain, are `coordination.chain.eip712.require_quorum_offchain`.
"""

from __future__ import annotations

import enum
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from coordination.attest.receipts import SignedReceipt
from coordination.chain.eip712 import recover_struct_signer, sign_struct
from coordination.errors import AttestationError

if TYPE_CHECKING:
    from coordination.verify.validator import Validator

logger = logging.getLogger(__name__)


# -- verdicts: one validator's signed ruling on one receipt -------------------------------------------------------


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


def verdict_json(signed: SignedVerdict, domain: dict, receipt=None) -> dict:
    """A verdict for the report: what was ruled, the receipt it rules on (for aggregation), the signature."""
    v = signed.verdict
    return {
        "receipt_json": receipt.to_json() if receipt is not None else None,
        "epoch": v.epoch,
        "peer": v.peer,
        "receipt": "0x" + v.receipt.hex(),
        "status": v.status.name,
        "kind": v.kind.name,
        "evidence": "0x" + v.evidence.hex(),
        "detail": v.finding.detail if v.finding else "",
        "slot": v.finding.slot if v.finding else -1,
        "generation": v.finding.generation if v.finding else -1,
        "validator": signed.signer(domain),
        "signature": "0x" + signed.signature.hex(),
    }


# -- in process: validators re-check each other's findings (reconcile) --------------------------------------------


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


# -- from verdict reports: one ruling per receipt, weighed by stake (aggregate) -----------------------------------


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


def aggregate_reports(
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
