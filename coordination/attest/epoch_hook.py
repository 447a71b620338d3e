"""The swarm trainer's attestation hook: an epoch's seeded rollouts become signed records, stored and published.

`SwarmGRPOTrainer(on_epoch_end=...)` hands over an `EpochRecord` whose `seeded` samples are the
epoch's rollouts exactly as GRPO trained on them: slot, generation, task seed/index, prompt, the
sampled completion token ids and their sampling log-probs (trainer.seeded_grpo), the reward. The hook
files them as `RolloutRecord`s without decoding and re-encoding anything (the completion text is the
decoding of the ids, as TRL scored it), commits the epoch's gradient contribution
(`record.outcome.contribution`, its sha2-256 digest) in the receipt, signs it under the epoch's
canonical checkpoint, writes it to the peer's `RolloutDirectory` and, with a DHT, publishes it.

    attester = EpochAttester(account=acct, run_id=spec.run_id, domain=domain, task=task, tokenizer=tok,
                             store=RolloutDirectory("outputs/rollouts"), checkpoint_cid=lambda epoch: cid)
    run_peer(spec, ..., peer_address=acct.address, on_epoch_end=attester)

Validators check every token with one forward pass under the canonical checkpoint (seeded sampling),
the log-probs within a calibrated tolerance, and pay only if the contribution entered the round.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from coordination.attest.assignment import assigned_indices
from coordination.attest.receipts import build_receipt, contribution_digest, sign_receipt
from coordination.attest.records import RolloutRecord
from coordination.attest.rollouts import decode_completion

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def lora_state_loaded(model, state: dict):
    """Temporarily copy `state` (name -> tensor, as `swarm_trainer.lora_state` returns) into `model`'s parameters."""
    import torch

    params = dict(model.named_parameters())
    saved = {name: params[name].detach().clone() for name in state}
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, tensor in saved.items():
                params[name].copy_(tensor)


def check_assigned(samples, run_id: str, epoch: int, peer: str) -> None:
    """ValueError unless every sample's task index is the one `assigned_indices` gives its slot."""
    slots = {int(s.row["slot"]) for s in samples}
    assigned = assigned_indices(run_id, epoch, peer, max(slots) + 1) if slots else []
    wrong = [s for s in samples if int(s.row["index"]) != assigned[int(s.row["slot"])]]
    if wrong:
        raise ValueError(
            f"{len(wrong)} rollouts of epoch {epoch} are on prompts not assigned to {peer}: build the "
            "epoch's dataset from assigned_indices(run_id, epoch, peer_address, n)"
        )


def records_from_seeded(samples, *, tokenizer, run_id: str, epoch: int, peer: str) -> list[RolloutRecord]:
    """One record per seeded sample: ids and log-probs as sampled, the text their decoding."""
    check_assigned(samples, run_id, epoch, peer)
    return [
        RolloutRecord.build(
            slot=int(s.row["slot"]),
            generation=int(s.generation),
            task_seed=int(s.row["seed"]),
            task_index=int(s.row["index"]),
            prompt=str(s.row["prompt"]),
            completion=decode_completion(tokenizer, s.completion_ids),
            completion_ids=s.completion_ids,
            reward=float(s.reward),
            logprobs=s.logprobs,
        )
        for s in samples
    ]


class EpochAttester:
    """Callable `on_epoch_end` hook (see module docstring); `published` keeps (epoch, signed receipt)."""

    def __init__(
        self,
        *,
        account,
        run_id: str,
        domain: dict,
        task,
        tokenizer,
        store,
        checkpoint_cid: Callable[[int], str],
        run_key: bytes | None = None,
        dht=None,
        owner: bytes | None = None,
    ):
        from coordination.chain.eip712 import run_key as chain_run_key

        self.account, self.run_id, self.domain, self.task, self.tokenizer = account, run_id, domain, task, tokenizer
        self.store, self.checkpoint_cid, self.dht, self.owner = store, checkpoint_cid, dht, owner
        self.run_key = run_key or chain_run_key(run_id)
        self.published: list[tuple[int, object]] = []

    def __call__(self, record) -> None:
        seeded = list(getattr(record, "seeded", None) or [])
        if not seeded:
            if record.rollouts:
                logger.warning(f"epoch {record.epoch}: rollouts without seeded sampling cannot be attested; skipped")
            return
        records = records_from_seeded(
            seeded, tokenizer=self.tokenizer, run_id=self.run_id, epoch=record.epoch, peer=self.account.address
        )
        outcome = getattr(record, "outcome", None)
        receipt = build_receipt(
            run_id_bytes32=self.run_key,
            epoch=record.epoch,
            peer=self.account.address,
            records=records,
            checkpoint_cid=self.checkpoint_cid(record.epoch),
            contribution=contribution_digest(getattr(outcome, "contribution", None)),
        )
        signed = sign_receipt(receipt, self.account.key, self.domain)
        self.store.put(signed, records)
        if self.dht is not None:
            from coordination.attest.dht_receipts import publish_receipt

            if not publish_receipt(
                self.dht, self.run_id, record.epoch, signed, maddrs=self.dht.get_visible_maddrs(), owner=self.owner
            ):
                logger.warning(f"DHT store of the epoch-{record.epoch} receipt failed; it stays in {self.store.root}")
        self.published.append((record.epoch, signed))
