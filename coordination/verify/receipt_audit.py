"""Audit one signed work receipt: signature, identity, checkpoint, records, caps, counts, prompts, rewards,
lengths, model checks, and whether its gradient entered the epoch's round.

Order matters: checks that cost nothing come first and the forward passes last, and only on
the rollouts the validator's unpredictable draw picked (`rollout_rate`); the round check comes after
them so that conclusive evidence (FRAUD) wins over a plain NOT_IN_ROUND. Returns the `Finding` of the
first failed check (None when the receipt holds up and is paid) plus the audit's cost.

    finding, cost = audit_receipt(facts, signed, epoch=3, fetch=store_fetch, drawn=lambda n: [0, 5],
                                  policy=lambda cid: (model, tok))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from coordination.attest.assignment import assigned_indices
from coordination.attest.logprobs import completion_logits_batch
from coordination.attest.receipts import SignedReceipt
from coordination.attest.records import MalformedRecord, RolloutRecord, rollouts_tree, verify_record
from coordination.attest.rollout_store import RecordsUnavailable
from coordination.errors import AttestationError, CheckpointError
from coordination.verify.policy_pool import AdapterRefused
from coordination.verify.record_checks import (
    check_before_model,
    check_length,
    check_prompt,
    check_reward,
    check_with_logits,
    prompt_ids_of,
)
from coordination.verify.run_facts import RunFacts
from coordination.verify.verdicts import Finding, Kind

RecordFetcher = Callable[[SignedReceipt], Sequence[tuple[RolloutRecord, Sequence[bytes]]]]


@dataclass
class AuditCost:
    """What an audit spent: forward passes and the tokens they covered (prompt + completion)."""

    forward_passes: int = 0
    forward_tokens: int = 0
    records_checked_cheaply: int = 0


def check_identity(facts: RunFacts, signed: SignedReceipt, epoch: int) -> Finding | None:
    try:
        signed.verify(facts.domain)
    except AttestationError as exc:
        return Finding(Kind.BAD_SIGNATURE, str(exc))
    receipt = signed.receipt
    if receipt.run_id != facts.run_id_bytes32:
        return Finding(Kind.WRONG_RUN, f"receipt is for run 0x{receipt.run_id.hex()}, not this run")
    if receipt.epoch != epoch:
        return Finding(Kind.WRONG_EPOCH, f"receipt is for epoch {receipt.epoch}, published for epoch {epoch}")
    expected = facts.checkpoint_of_epoch(epoch)
    if expected is not None and receipt.checkpoint_cid != expected:
        return Finding(
            Kind.WRONG_CHECKPOINT,
            f"names checkpoint {receipt.checkpoint_cid[:80]}, the canonical checkpoint of epoch {epoch} is {expected}",
        )
    return None


def check_caps(facts: RunFacts, signed: SignedReceipt) -> Finding | None:
    """Claims no larger than the assignment allows: prompts x group size samples, max_new_tokens each."""
    receipt = signed.receipt
    most = facts.prompts_per_epoch * facts.group_size if facts.prompts_per_epoch is not None else None
    if most is not None and receipt.samples > most:
        return Finding(Kind.COUNT_MISMATCH, f"claims {receipt.samples} samples, the assignment allows {most}")
    if receipt.completion_tokens > receipt.samples * facts.max_new_tokens:
        return Finding(
            Kind.COUNT_MISMATCH,
            f"claims {receipt.completion_tokens} tokens for {receipt.samples} samples of at most "
            f"{facts.max_new_tokens}",
        )
    return None


def check_round(facts: RunFacts, signed: SignedReceipt) -> Finding | None:
    """Paid only when the receipt's gradient contribution is one of the epoch's canonical round (if checkable)."""
    receipt = signed.receipt
    entered = facts.entered_round(receipt.epoch, receipt.peer, receipt.contribution)
    if entered is False:
        return Finding(
            Kind.NOT_IN_ROUND,
            f"contribution 0x{receipt.contribution.hex()[:16]}... of {receipt.peer} is not in the canonical round "
            f"that ended epoch {receipt.epoch}",
        )
    return None


def check_served_records(signed: SignedReceipt, served) -> Finding | None:
    """Every served record proves against the root and together they rebuild it (nothing withheld)."""
    root, records = signed.receipt.rollouts_root, [r for r, _ in served]
    if records and rollouts_tree(records).root == root:
        return None  # every record is a leaf of the root and none is missing
    for record, proof in served:
        if not verify_record(root, record, proof):
            return Finding(
                Kind.RECORD_NOT_IN_ROOT,
                "a served record does not prove against the receipt's root",
                record.slot,
                record.generation,
            )
    return Finding(Kind.RECORDS_UNAVAILABLE, f"the {len(records)} served records do not rebuild the root")


def check_counts(facts: RunFacts, signed: SignedReceipt, records: Sequence[RolloutRecord]) -> Finding | None:
    """The receipt's counts are the records' counts, and the records are whole GRPO groups on slots 0..P-1."""
    receipt, tokens = signed.receipt, sum(r.completion_tokens for r in records)
    if receipt.samples != len(records) or receipt.completion_tokens != tokens:
        return Finding(
            Kind.COUNT_MISMATCH,
            f"receipt claims {receipt.samples} samples / {receipt.completion_tokens}"
            f" tokens; its root holds {len(records)} / {tokens}",
        )
    pairs = Counter((r.slot, r.generation) for r in records)
    prompts = len(records) // facts.group_size
    expected = {(s, g) for s in range(prompts) for g in range(facts.group_size)}
    if len(records) % facts.group_size or set(pairs) != expected or max(pairs.values()) > 1:
        return Finding(
            Kind.COUNT_MISMATCH,
            f"records are not {prompts} whole groups of {facts.group_size} on "
            "distinct slots 0..P-1 (duplicated or missing rollouts)",
        )
    return None


def check_cheaply(facts: RunFacts, signed: SignedReceipt, records, cost: AuditCost) -> Finding | None:
    receipt = signed.receipt
    assigned = assigned_indices(facts.run_id, receipt.epoch, receipt.peer, len(records) // facts.group_size)
    eos = facts.eos_token_ids or None
    for record in records:
        cost.records_checked_cheaply += 1
        finding = check_prompt(facts, record, assigned) or check_reward(facts, record)
        if not finding and eos is not None:
            finding = check_length(facts, record, eos, facts.vocab_size)
        if finding:
            return finding
    return None


def check_drawn(facts: RunFacts, signed: SignedReceipt, records, picks, policy, cost: AuditCost) -> Finding | None:
    if not picks:
        return None
    try:
        model, tokenizer = policy(signed.receipt.checkpoint_cid)
    except AdapterRefused as exc:
        return Finding(Kind.WRONG_CHECKPOINT, f"checkpoint {signed.receipt.checkpoint_cid[:80]} refused: {exc}")
    except (CheckpointError, OSError, TimeoutError) as exc:
        return Finding(Kind.RECORDS_UNAVAILABLE, f"checkpoint {signed.receipt.checkpoint_cid[:80]} unavailable: {exc}")
    drawn = [records[i] for i in picks]
    for record in drawn:  # cheap, and it keeps out-of-vocabulary ids away from the model
        finding = check_before_model(facts, record, model, tokenizer)
        if finding:
            return finding
    prompts = [prompt_ids_of(facts, r, tokenizer) for r in drawn]
    cost.forward_passes += len(drawn)
    cost.forward_tokens += sum(len(p) + r.completion_tokens for p, r in zip(prompts, drawn, strict=True))
    all_logits = completion_logits_batch(model, prompts, [list(r.completion_ids) for r in drawn])
    for record, logits in zip(drawn, all_logits, strict=True):
        finding = check_with_logits(facts, record, logits, epoch=signed.receipt.epoch, peer=signed.receipt.peer)
        if finding:
            return finding
    return None


def fetch_served(fetch: RecordFetcher, signed: SignedReceipt):
    try:
        return list(fetch(signed)), None
    except MalformedRecord as exc:
        return None, Finding(Kind.MALFORMED_RECORD, f"records of {signed.receipt.peer} do not parse: {exc}")
    except (RecordsUnavailable, OSError, TimeoutError) as exc:
        return None, Finding(Kind.RECORDS_UNAVAILABLE, f"records of {signed.receipt.peer} unavailable: {exc}")


def audit_receipt(
    facts: RunFacts,
    signed: SignedReceipt,
    *,
    epoch: int,
    fetch: RecordFetcher,
    drawn: Callable[[int], list[int]],
    policy,
) -> tuple[Finding | None, AuditCost]:
    """The first failed check's Finding (None: accepted), and the audit's cost."""
    cost = AuditCost()
    finding = check_identity(facts, signed, epoch) or check_caps(facts, signed)
    if finding:
        return finding, cost
    served, finding = fetch_served(fetch, signed)
    finding = finding or check_served_records(signed, served)
    if finding:
        return finding, cost
    records = sorted((r for r, _ in served), key=lambda r: (r.slot, r.generation))
    finding = check_counts(facts, signed, records) or check_cheaply(facts, signed, records, cost)
    if finding:
        return finding, cost
    finding = check_drawn(facts, signed, records, drawn(len(records)), policy, cost)
    return finding or check_round(facts, signed), cost
