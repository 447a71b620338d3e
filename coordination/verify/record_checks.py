"""Checks on one rollout record: the cheap exact ones (prompt, reward) and the forward-pass ones.

Every function returns a `Finding` when the record fails, else None.

  - `check_prompt`: the record's task index is the one `assigned_indices` gives its slot, its
    seed is the run's, and its prompt digest is that of the regenerated prompt.
  - `check_reward`: the reward recomputed from the completion equals the claimed one exactly
    (micro-unit integers).
  - `check_length` (every record, cheap): ids inside the vocabulary, at most `max_new_tokens`, ended by
    their first EOS unless the budget ran out.
  - `check_against_model`: ONE forward pass under the epoch's canonical checkpoint gives (a) the logits
    that the seeded sampler must have drawn each token from (fabricated completions fail here) and
    (b) the log-probs, compared to the claimed milli-nats within a calibrated tolerance.
"""

from __future__ import annotations

import torch

from coordination.attest.logprobs import completion_logits, encode_prompt
from coordination.attest.records import RolloutRecord, quantize_logprobs, quantize_reward, text_digest
from coordination.attest.rollouts import decode_completion
from coordination.attest.seeded_sampling import mismatched_positions, rollout_seed
from coordination.verify.run_facts import RunFacts
from coordination.verify.verdicts import Finding, Kind


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
