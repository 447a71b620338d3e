"""The swarm trainer's attestation hook: an epoch's rollouts become signed records, stored and published.

`SwarmGRPOTrainer(on_epoch_end=...)` hands over an `EpochRecord` (the epoch's rollouts with task
seed/index, prompt, completion and reward; the LoRA state that generated them; the model). The
hook recomputes every completion's log-probs with `completion_logprobs` under *that* LoRA state,
files each rollout under its slot of `assigned_indices(run id, epoch, peer)`, signs the receipt,
writes it to the peer's `RolloutDirectory` and, with a DHT, publishes it.

    attester = EpochAttester(account=acct, run_id=spec.run_id, domain=domain, task=task, tokenizer=tok,
                             store=RolloutDirectory("outputs/rollouts"), checkpoint_cid=lambda epoch: cid)
    run_peer(spec, ..., peer_address=acct.address, on_epoch_end=attester)

TRL samples completions itself, so these records are checked with `RunFacts(seeded_sampling=False)`:
prompts, rewards, counts and log-probs are verified; whether a completion was *sampled* is not.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from coordination.attest.assignment import assigned_indices
from coordination.attest.logprobs import completion_logprobs, encode_prompt
from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord

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


def slots_of(rollouts, run_id: str, epoch: int, peer: str) -> dict[int, int]:
    """task index -> slot in the peer's assignment; ValueError when a prompt was not assigned to it."""
    distinct = list(dict.fromkeys(r.index for r in rollouts))
    assigned = assigned_indices(run_id, epoch, peer, len(distinct))
    missing = [i for i in distinct if i not in assigned]
    if missing:
        raise ValueError(
            f"{len(missing)} rollouts of epoch {epoch} are on prompts not assigned to {peer}: build the "
            "epoch's dataset from assigned_indices(run_id, epoch, peer_address, n)"
        )
    return {index: assigned.index(index) for index in distinct}


def records_from_rollouts(rollouts, *, model, tokenizer, run_id: str, epoch: int, peer: str) -> list[RolloutRecord]:
    """One record per rollout; generation = order within its prompt's group."""
    slots, seen = slots_of(rollouts, run_id, epoch, peer), {}
    out = []
    for r in rollouts:
        generation = seen[r.index] = seen.get(r.index, -1) + 1
        ids = list(tokenizer.encode(r.completion, add_special_tokens=False))
        logprobs = completion_logprobs(model, tokenizer, encode_prompt(tokenizer, r.prompt), ids)
        out.append(
            RolloutRecord.build(
                slot=slots[r.index],
                generation=generation,
                task_seed=int(r.seed),
                task_index=int(r.index),
                prompt=r.prompt,
                completion=r.completion,
                completion_ids=ids,
                reward=r.reward,
                logprobs=logprobs,
            )
        )
    return out


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
        from coordination.chain.signing import run_key as chain_run_key

        self.account, self.run_id, self.domain, self.task, self.tokenizer = account, run_id, domain, task, tokenizer
        self.store, self.checkpoint_cid, self.dht, self.owner = store, checkpoint_cid, dht, owner
        self.run_key = run_key or chain_run_key(run_id)
        self.published: list[tuple[int, object]] = []

    def __call__(self, record) -> None:
        if not record.rollouts:
            return
        with lora_state_loaded(record.model, record.adapter_state) as model:
            records = records_from_rollouts(
                record.rollouts,
                model=model,
                tokenizer=self.tokenizer,
                run_id=self.run_id,
                epoch=record.epoch,
                peer=self.account.address,
            )
        receipt = build_receipt(
            run_id_bytes32=self.run_key,
            epoch=record.epoch,
            peer=self.account.address,
            records=records,
            checkpoint_cid=self.checkpoint_cid(record.epoch),
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
