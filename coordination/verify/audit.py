"""Audit one signed work receipt against the run's facts: the draw, the checks on each record, the receipt.

Checks: signature, identity, checkpoint, records, caps, counts, prompts, rewards, lengths, model checks, and
whether the receipt's gradient entered the epoch's round. Order matters: checks that cost nothing come first
and the forward passes last, and only on the rollouts the validator's unpredictable draw picked
(`rollout_rate`); the round check comes after them so that conclusive evidence (FRAUD) wins over a plain
NOT_IN_ROUND. Returns the `Finding` of the first failed check (None when the receipt holds up and is paid)
plus the audit's cost.

    picks = draw_rollouts(validator_key, domain, receipt, count=64, rate=0.1, minimum=1)   # sorted indices
    finding, cost = audit_receipt(facts, signed, epoch=3, fetch=store_fetch, drawn=lambda n: [0, 5],
                                  policy=lambda cid: (model, tok))

1. **The draw.** Its seed is keccak of the validator's (deterministic, RFC 6979) EIP-712 signature over
   (run id, epoch, peer, rollouts root): only the validator's key can produce it, the peer has already
   committed its root before it exists, and the validator can publish the signature to prove its draw was
   not chosen after the fact. Peers cannot predict it; anyone can check it afterwards.
2. **Checks on one record** (each returns a `Finding` when the record fails, else None):
   - `check_prompt`: the record's task index is the one `assigned_indices` gives its slot, its seed is the
     run's, and its prompt digest is that of the regenerated prompt.
   - `check_reward`: the RL reward recomputed from the completion equals the claimed one exactly (micro-unit
     integers).
   - `check_length` (every record, cheap): ids inside the vocabulary, at most `max_new_tokens`, ended by
     their first EOS unless the budget ran out.
   - `check_against_model`: ONE forward pass under the epoch's canonical checkpoint gives (a) the logits that
     the seeded sampler must have drawn each token from (fabricated completions fail here) and (b) the
     log-probs, compared to the claimed milli-nats within a calibrated tolerance.
3. **Many receipts** (`Validator.find_many`): `prepare_audit` runs every check of each receipt up to its drawn
   rollouts' forward pass, `finish_audits` recomputes the drawn records of all of them that name the same
   checkpoint in shared right-padded forward passes (`batched_logits`, at most `MAX_BATCH_TOKENS` tokens each)
   and rules each receipt's records exactly as `audit_receipt` does; then the round check. Same checks, same
   order, same rulings: only the per-pass overhead is shared.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from eth_account import Account
from eth_utils import keccak

from coordination.attest.assignment import assigned_indices
from coordination.attest.logprobs import completion_logits, completion_logits_batch, encode_prompt
from coordination.attest.receipts import SignedReceipt
from coordination.attest.records import (
    MalformedRecord,
    RolloutRecord,
    quantize_logprobs,
    quantize_reward,
    rollouts_tree,
    text_digest,
    verify_record,
)
from coordination.attest.rollout_store import RecordsUnavailable
from coordination.attest.rollouts import decode_completion
from coordination.attest.seeded_sampling import mismatched_positions, rollout_seed
from coordination.chain.eip712 import recover_struct_signer, sign_struct
from coordination.errors import AttestationError, CheckpointError
from coordination.verify.policy_pool import AdapterRefused
from coordination.verify.rulings import Finding, Kind
from coordination.verify.run_facts import RunFacts

# -- the draw: which rollouts get a forward pass ------------------------------------------------------------------


AUDIT_DRAW_FIELDS = (("runId", "bytes32"), ("epoch", "uint64"), ("peer", "address"), ("rolloutsRoot", "bytes32"))


def _message(receipt) -> dict:
    return {
        "runId": receipt.run_id,
        "epoch": receipt.epoch,
        "peer": receipt.peer,
        "rolloutsRoot": receipt.rollouts_root,
    }


def draw_signature(private_key, domain: dict, receipt) -> bytes:
    return sign_struct(private_key, domain, "AuditDraw", AUDIT_DRAW_FIELDS, _message(receipt))


def draw_signer(domain: dict, receipt, signature: bytes) -> str:
    return recover_struct_signer(domain, "AuditDraw", AUDIT_DRAW_FIELDS, _message(receipt), signature)


def rollouts_to_check(count: int, rate: float, minimum: int = 1) -> int:
    """How many of `count` rollouts get a forward-pass recomputation at sampling `rate`."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    return min(count, max(minimum, math.ceil(rate * count))) if count else 0


def draw_rollouts(private_key, domain: dict, receipt, *, count: int, rate: float, minimum: int = 1) -> list[int]:
    """Sorted indices (into the served record list) of the rollouts to recompute."""
    seed = int.from_bytes(keccak(draw_signature(private_key, domain, receipt)), "big")
    return sorted(random.Random(seed).sample(range(count), rollouts_to_check(count, rate, minimum)))


def validator_address(private_key) -> str:
    return Account.from_key(private_key).address


# -- checks on one rollout record ---------------------------------------------------------------------------------


def _finding(kind: Kind, record: RolloutRecord, detail: str) -> Finding:
    return Finding(kind, detail, record.slot, record.generation)


class TaskSamples:
    """Per-audit memo of what the checks regenerate from a task index: the sample, its rendered prompt and digest.

    A receipt's GRPO groups share a prompt (`group_size` records per task index), so the audit builds each
    sample and prompt once instead of once per record and check; the values are the same pure functions of
    (run task seed, task index) the checks would compute themselves."""

    def __init__(self, facts: RunFacts):
        self.facts, self._samples, self._prompts, self._digests = facts, {}, {}, {}

    def sample(self, index: int):
        if index not in self._samples:
            self._samples[index] = self.facts.task.sample(self.facts.task_seed, index)
        return self._samples[index]

    def prompt(self, index: int) -> str:
        if index not in self._prompts:
            self._prompts[index] = self.facts.prompt(self.sample(index))
        return self._prompts[index]

    def digest(self, index: int) -> str:
        if index not in self._digests:
            self._digests[index] = "0x" + text_digest(self.prompt(index)).hex()
        return self._digests[index]


def check_prompt(
    facts: RunFacts, record: RolloutRecord, assigned: list[int], samples: TaskSamples | None = None
) -> Finding | None:
    if record.slot >= len(assigned) or record.task_index != assigned[record.slot]:
        want = assigned[record.slot] if record.slot < len(assigned) else None
        return _finding(
            Kind.WRONG_PROMPT, record, f"task index {record.task_index} at slot {record.slot}, assigned {want}"
        )
    if record.task_seed != facts.task_seed:
        return _finding(Kind.WRONG_PROMPT, record, f"task seed {record.task_seed}, run uses {facts.task_seed}")
    samples = samples or TaskSamples(facts)
    if record.prompt_digest != samples.digest(record.task_index):
        return _finding(Kind.WRONG_PROMPT, record, "prompt digest is not that of the assigned sample's prompt")
    return None


def check_reward(facts: RunFacts, record: RolloutRecord, samples: TaskSamples | None = None) -> Finding | None:
    sample = (samples or TaskSamples(facts)).sample(record.task_index)
    recomputed = facts.reward_fn(record.completion, sample)
    if quantize_reward(recomputed) != quantize_reward(record.reward):
        return _finding(Kind.WRONG_REWARD, record, f"claimed reward {record.reward}, recomputed {recomputed}")
    return None


def check_length(facts: RunFacts, record: RolloutRecord, eos_token_ids, vocab_size: int | None) -> Finding | None:
    """Seeded sampling stops at its first EOS or at the budget: anything else was cut, padded or made up."""
    ids, eos = record.completion_ids, set(eos_token_ids)
    if vocab_size is not None and any(t >= vocab_size for t in ids):
        return _finding(Kind.FABRICATED_COMPLETION, record, f"a token id is outside the vocabulary ({vocab_size})")
    ended = bool(ids) and ids[-1] in eos
    early_eos = any(t in eos for t in ids[:-1])
    if not ids or len(ids) > facts.max_new_tokens or early_eos or (len(ids) < facts.max_new_tokens and not ended):
        return _finding(
            Kind.FABRICATED_COMPLETION,
            record,
            f"{len(ids)} tokens, not ended by its first EOS or the budget {facts.max_new_tokens}",
        )
    return None


def check_sampling(facts: RunFacts, record: RolloutRecord, logits, *, epoch: int, peer: str) -> Finding | None:
    seed = rollout_seed(facts.run_id, epoch, peer, record.slot, record.generation)
    bad = mismatched_positions(
        logits,
        list(record.completion_ids),
        seed=seed,
        temperature=facts.temperature,
        top_k=facts.top_k,
        top_p=facts.top_p,
        cdf_tolerance=facts.cdf_tolerance,
    )
    if bad:
        return _finding(
            Kind.FABRICATED_COMPLETION,
            record,
            f"{len(bad)}/{record.completion_tokens} tokens are not the seeded draws (first at {bad[0]})",
        )
    return None


def check_before_model(facts: RunFacts, record: RolloutRecord, model, tokenizer) -> Finding | None:
    """What a drawn record must pass before its forward pass: length/EOS/vocabulary, text = decoding of its ids."""
    finding = check_length(facts, record, facts.eos_token_ids or (tokenizer.eos_token_id,), _vocab(facts, model))
    if finding:
        return finding
    if decode_completion(tokenizer, record.completion_ids) != record.completion:
        return _finding(Kind.FABRICATED_COMPLETION, record, "completion text is not the decoding of its token ids")
    return None


def check_with_logits(facts: RunFacts, record: RolloutRecord, logits, *, epoch: int, peer: str) -> Finding | None:
    """Every token is its seeded draw, and the log-probs are the sampling distribution's (within tolerance)."""
    return check_sampling(facts, record, logits, epoch=epoch, peer=peer) or check_logprobs(facts, record, logits)


def prompt_ids_of(facts: RunFacts, record: RolloutRecord, tokenizer, samples: TaskSamples | None = None) -> list[int]:
    return encode_prompt(tokenizer, (samples or TaskSamples(facts)).prompt(record.task_index))


def check_against_model(
    facts: RunFacts, record: RolloutRecord, model, tokenizer, *, epoch: int, peer: str
) -> Finding | None:
    """Decoding, length/EOS, then sampling and log-probs: one forward pass under the epoch's canonical `model`."""
    finding = check_before_model(facts, record, model, tokenizer)
    if finding:
        return finding
    logits = completion_logits(model, prompt_ids_of(facts, record, tokenizer), list(record.completion_ids))
    return check_with_logits(facts, record, logits, epoch=epoch, peer=peer)


def _vocab(facts: RunFacts, model) -> int | None:
    if facts.vocab_size is not None:
        return facts.vocab_size
    embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return int(embeddings.weight.shape[0]) if embeddings is not None else None


def check_logprobs(facts: RunFacts, record: RolloutRecord, logits) -> Finding | None:
    if len(record.logprobs_milli) != len(record.completion_ids):
        return _finding(
            Kind.WRONG_LOGPROBS,
            record,
            f"{len(record.logprobs_milli)} log-probs for {len(record.completion_ids)} tokens",
        )
    logp = torch.log_softmax(logits / facts.temperature, dim=-1)  # the sampling distribution, as GRPO trains on it
    index = torch.tensor(list(record.completion_ids), dtype=torch.long).unsqueeze(1)
    recomputed = quantize_logprobs(logp.gather(1, index).squeeze(1).tolist())
    worst = max((abs(a - b) for a, b in zip(recomputed, record.logprobs_milli, strict=True)), default=0)
    if worst > facts.logprob_tolerance_milli:
        return _finding(
            Kind.WRONG_LOGPROBS,
            record,
            f"log-probs off by up to {worst} milli-nats (tolerance {facts.logprob_tolerance_milli})",
        )
    return None


# -- the audit of one receipt, and of many in shared forward passes -----------------------------------------------


MAX_BATCH_TOKENS = 16384  # tokens per batched forward pass of drawn records (bounds the validator's memory)


MAX_BATCH_LOGITS = 1 << 27  # and logits per pass (tokens x vocabulary): 512 MiB of fp32


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


def check_cheaply(
    facts: RunFacts, signed: SignedReceipt, records, cost: AuditCost, samples: TaskSamples | None = None
) -> Finding | None:
    receipt, samples = signed.receipt, samples or TaskSamples(facts)
    assigned = assigned_indices(facts.run_id, receipt.epoch, receipt.peer, len(records) // facts.group_size)
    eos = facts.eos_token_ids or None
    for record in records:
        cost.records_checked_cheaply += 1
        finding = check_prompt(facts, record, assigned, samples) or check_reward(facts, record, samples)
        if not finding and eos is not None:
            finding = check_length(facts, record, eos, facts.vocab_size)
        if finding:
            return finding
    return None


@dataclass
class PendingAudit:
    """A receipt that passed every check up to its drawn rollouts' forward pass: what that pass needs."""

    signed: SignedReceipt
    drawn: list  # the drawn RolloutRecords, in draw order
    prompts: list  # their prompt token ids
    checkpoint: str  # the CID every drawn record is recomputed under

    @property
    def rows(self) -> list[tuple[list[int], list[int]]]:
        return [(p, list(r.completion_ids)) for p, r in zip(self.prompts, self.drawn, strict=True)]


def load_drawn(
    facts: RunFacts, signed: SignedReceipt, records, picks, policy, cost: AuditCost, samples: TaskSamples | None = None
) -> tuple[Finding | None, PendingAudit | None]:
    """The checkpoint and the cheap checks of the drawn records; (finding, None) or (None, pending forward pass)."""
    if not picks:
        return None, None
    try:
        model, tokenizer = policy(signed.receipt.checkpoint_cid)
    except AdapterRefused as exc:
        return Finding(Kind.WRONG_CHECKPOINT, f"checkpoint {signed.receipt.checkpoint_cid[:80]} refused: {exc}"), None
    except (CheckpointError, OSError, TimeoutError) as exc:
        return (
            Finding(Kind.RECORDS_UNAVAILABLE, f"checkpoint {signed.receipt.checkpoint_cid[:80]} unavailable: {exc}"),
            None,
        )
    drawn = [records[i] for i in picks]
    for record in drawn:  # cheap, and it keeps out-of-vocabulary ids away from the model
        finding = check_before_model(facts, record, model, tokenizer)
        if finding:
            return finding, None
    samples = samples or TaskSamples(facts)
    prompts = [prompt_ids_of(facts, r, tokenizer, samples) for r in drawn]
    cost.forward_passes += len(drawn)
    cost.forward_tokens += sum(len(p) + r.completion_tokens for p, r in zip(prompts, drawn, strict=True))
    return None, PendingAudit(signed, drawn, prompts, signed.receipt.checkpoint_cid)


def rule_drawn(facts: RunFacts, pending: PendingAudit, all_logits) -> Finding | None:
    """Every drawn record against its recomputed logits (seeded draws, then log-probs): the first failure."""
    receipt = pending.signed.receipt
    for record, logits in zip(pending.drawn, all_logits, strict=True):
        finding = check_with_logits(facts, record, logits, epoch=receipt.epoch, peer=receipt.peer)
        if finding:
            return finding
    return None


def check_drawn(
    facts: RunFacts, signed: SignedReceipt, records, picks, policy, cost: AuditCost, samples: TaskSamples | None = None
) -> Finding | None:
    finding, pending = load_drawn(facts, signed, records, picks, policy, cost, samples)
    if finding or pending is None:
        return finding
    model, _ = policy(pending.checkpoint)
    return rule_drawn(facts, pending, batched_logits(model, pending.rows))


def fetch_served(fetch: RecordFetcher, signed: SignedReceipt):
    try:
        return list(fetch(signed)), None
    except MalformedRecord as exc:
        return None, Finding(Kind.MALFORMED_RECORD, f"records of {signed.receipt.peer} do not parse: {exc}")
    except (RecordsUnavailable, OSError, TimeoutError) as exc:
        return None, Finding(Kind.RECORDS_UNAVAILABLE, f"records of {signed.receipt.peer} unavailable: {exc}")


def prepare_audit(
    facts: RunFacts,
    signed: SignedReceipt,
    *,
    epoch: int,
    fetch: RecordFetcher,
    drawn: Callable[[int], list[int]],
    policy,
    cost: AuditCost,
) -> tuple[Finding | None, PendingAudit | None]:
    """Every check before the drawn rollouts' forward pass: (finding, None), (None, pending) or (None, None)."""
    finding = check_identity(facts, signed, epoch) or check_caps(facts, signed)
    if finding:
        return finding, None
    served, finding = fetch_served(fetch, signed)
    finding = finding or check_served_records(signed, served)
    if finding:
        return finding, None
    records = sorted((r for r, _ in served), key=lambda r: (r.slot, r.generation))
    samples = TaskSamples(facts)  # each task sample and prompt built once per audit
    finding = check_counts(facts, signed, records) or check_cheaply(facts, signed, records, cost, samples)
    if finding:
        return finding, None
    return load_drawn(facts, signed, records, drawn(len(records)), policy, cost, samples)


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
    finding, pending = prepare_audit(facts, signed, epoch=epoch, fetch=fetch, drawn=drawn, policy=policy, cost=cost)
    if pending is not None:
        model, _ = policy(pending.checkpoint)
        finding = rule_drawn(facts, pending, batched_logits(model, pending.rows))
    if finding:
        return finding, cost
    return check_round(facts, signed), cost


def batch_tokens(model) -> int:
    """Tokens per batched forward pass: `MAX_BATCH_TOKENS`, fewer for a large vocabulary (`MAX_BATCH_LOGITS`)."""
    embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    vocab = int(embeddings.weight.shape[0]) if embeddings is not None else 1
    return max(1, min(MAX_BATCH_TOKENS, MAX_BATCH_LOGITS // max(vocab, 1)))


def batched_logits(model, rows: Sequence[tuple[list[int], list[int]]], max_tokens: int | None = None) -> list:
    """`completion_logits` of every (prompt, completion) row, in padded forward passes of <= `max_tokens` each.

    Rows are grouped by length (less padding) and the logits come back in the rows' order."""
    max_tokens = max_tokens or batch_tokens(model)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
    out: list = [None] * len(rows)
    chunk: list[int] = []

    def flush():
        if chunk:
            logits = completion_logits_batch(model, [rows[i][0] for i in chunk], [rows[i][1] for i in chunk])
            for i, row_logits in zip(chunk, logits, strict=True):
                out[i] = row_logits
            chunk.clear()

    for i in order:
        width = len(rows[i][0]) + len(rows[i][1])
        if chunk and width * (len(chunk) + 1) > max_tokens:
            flush()
        chunk.append(i)
    flush()
    return out


def finish_audits(facts: RunFacts, pendings: Sequence[PendingAudit], policy) -> list[Finding | None]:
    """The drawn-record rulings of many pending audits: ONE set of batched forward passes per checkpoint.

    Each pending audit's rows are recomputed under its own checkpoint (the policy is loaded once per CID, and
    the forward runs while it is loaded) and ruled exactly as `audit_receipt` rules them (seeded draws, then
    log-probs, first failure of that receipt); the round check is left to the caller."""
    findings: list[Finding | None] = [None] * len(pendings)
    by_checkpoint: dict[str, list[int]] = {}
    for i, p in enumerate(pendings):
        by_checkpoint.setdefault(p.checkpoint, []).append(i)
    for cid, indices in by_checkpoint.items():
        model, _ = policy(cid)
        rows = [row for i in indices for row in pendings[i].rows]
        logits = batched_logits(model, rows)
        at = 0
        for i in indices:
            n = len(pendings[i].drawn)
            findings[i] = rule_drawn(facts, pendings[i], logits[at : at + n])
            at += n
    return findings
