"""Join a public run: start from the promoted checkpoint, train with the swarm, attest every epoch.

What `hivetune join --key-file ...` (an attested peer) does on top of the plain swarm peer:

1. **Start point.** The run's latest promoted checkpoint (`CheckpointRegistry.current`), or a CID
   given with `--from`, is fetched by CID from the swarm, verified block by block, and loaded as
   the trainable adapter. Without either, training starts from a fresh LoRA on the base model.
2. **Assigned prompts.** Each epoch's prompts are `assigned_indices(run id, epoch, peer address)`
   in slot order (`AssignedPromptsTrainer`), so validators can recompute them and nobody picks
   easy samples.
3. **Per-epoch attestation.** At each epoch end the seeded rollouts (sampled ids and log-probs as
   GRPO trained on them) become signed records + an EIP-712 work receipt (`EpochAttester`) under the
   epoch's *canonical* checkpoint: the state every member of the swarm's round held when the rollouts
   were generated (coordination.swarm.consensus), committing to the gradient contribution the peer
   sent to the round; published in the DHT (owner-protected entry) and served to validators.
4. **Final checkpoint.** The canonical state of the last epoch; with `serve`, the peer keeps
   serving checkpoints and rollout records until it is stopped.

    peer = attested_peer(spec, PeerConfig(initial_peers=(maddr,), max_epochs=4), account=acct, clients=clients,
                         store=CheckpointStore(), rollouts=RolloutDirectory("rollouts"))
    result = peer.run(); peer.hook.summary()
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass
class EpochPublisher:
    """`on_epoch_end`: publish the epoch's starting adapter as a checkpoint, attest the epoch under its CID."""

    spec: object
    store: object  # CheckpointStore
    server: object | None  # CheckpointServer (None: local only)
    attester: object | None  # EpochAttester (None: train without receipts)
    progress_path: Path | None = None
    cids: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shadow: object = None

    def shadow_of(self, model, state: dict):
        """A clean copy of the policy holding `state`: the base loaded from disk + the same LoRA, in eval mode.

        Saving and log-prob recomputation never touch the live training model (hivemind's background
        averaging may be writing to it, and the trainer may have cast it for mixed precision); the
        copy is exactly what a validator loads from the published checkpoint, so the receipt's
        log-probs match the validator's.
        """
        import copy

        import torch

        if self._shadow is None:
            from peft import get_peft_model

            from trainer.base_models import load_pinned_base

            base, _ = load_pinned_base(**self.spec.model.pins)
            config = copy.deepcopy(_peft_config(model))
            config.inference_mode = True
            self._shadow = get_peft_model(base, config)
        params = dict(self._shadow.named_parameters())
        with torch.no_grad():
            for name, tensor in state.items():
                params[name].copy_(tensor.to(params[name].dtype))
        return self._shadow.eval()

    def publish(self, model, *, step: int) -> str:
        with tempfile.TemporaryDirectory(prefix="hivetune-adapter-") as tmp:
            model.save_pretrained(tmp)
            cid = self.store.add_adapter(
                tmp,
                base_model=self.spec.model.base,
                base_revision=self.spec.model.revision,
                run_id=self.spec.run_id,
                step=step,
                parent=self.cids.get(step - 1),
            )
        if self.server is not None:
            self.server.announce(cid)
        return cid

    def __call__(self, record) -> None:
        import dataclasses

        with self._lock:
            outcome = getattr(record, "outcome", None)
            if outcome is not None and outcome.start_cid:
                cid = outcome.start_cid  # the epoch's canonical checkpoint: what validators audit against
            else:
                cid = self.publish(self.shadow_of(record.model, record.adapter_state), step=record.epoch)
            self.cids[record.epoch] = cid
            if self.attester is not None:  # seeded records carry their own ids and log-probs: no model needed
                self.attester(dataclasses.replace(record, adapter_state={}))
            rewards = [r.reward for r in record.rollouts]
            self.history.append(
                {
                    "epoch": record.epoch,
                    "checkpoint": cid,
                    "rollouts": len(rewards),
                    "reward_mean": sum(rewards) / len(rewards) if rewards else None,
                    "correct_rate": _correct_rate(record.rollouts),
                    "entered_round": bool(outcome.entered) if outcome is not None else None,
                    "next_checkpoint": outcome.cid if outcome is not None else None,
                }
            )
            self._write_progress()

    def _write_progress(self) -> None:
        if self.progress_path is None:
            return
        self.progress_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"epochs": self.history}, indent=1))
        tmp.replace(self.progress_path)


def _peft_config(model):
    """The LoRA config of the (possibly accelerate-wrapped) PEFT training model."""
    inner = getattr(model, "module", model)
    return inner.peft_config[getattr(inner, "active_adapter", "default")]


def _correct_rate(rollouts) -> float | None:
    values = [v for r in rollouts for name, v in r.rewards.items() if name.startswith("correctness")]
    return sum(values) / len(values) if values else None


def start_checkpoint(spec, *, clients, start: str | None) -> str | None:
    """The CID to start from: `start` if it is a CID, the run's promoted checkpoint for 'promoted', else None."""
    if start in (None, "", "none", "base"):
        return None
    if start != "promoted":
        return start
    if clients is None and spec.initial_checkpoint:
        return spec.initial_checkpoint
    if clients is None:
        from coordination.errors import ConfigError

        raise ConfigError("--from promoted needs the chain: pass --deployment (and --rpc) of the run's contracts")
    current = clients.registry.current(spec.run_id)
    if current is None:
        logger.info("the run has no promoted checkpoint yet: starting from the spec's initial checkpoint or the base")
        return spec.initial_checkpoint
    return current.cid


class AttestationHook:
    """The attested peer's per-epoch hook: serve rollout records, sign a receipt under each epoch's canonical CID.

    `Peer` calls `bind(...)` once its DHT, store, server and tokenizer exist, `hook(record)` after every
    epoch, and `close()` at the end.
    """

    def __init__(self, *, account, rollouts, domain: dict, output_dir: str):
        self.account, self.rollouts, self.domain, self.output_dir = account, rollouts, domain, output_dir
        self.publisher, self.attester, self._server = None, None, None

    def bind(self, *, dht, store, server, tokenizer, spec) -> None:
        from coordination.attest.epoch_hook import EpochAttester
        from coordination.attest.p2p_serving import RolloutServer
        from trainer.tasks import get_task

        self._server = RolloutServer(dht=dht, store=self.rollouts, prefix=spec.run_id).start()
        self.attester = EpochAttester(
            account=self.account,
            run_id=spec.run_id,
            domain=self.domain,
            task=get_task(spec.task.name, **spec.task.params),
            tokenizer=tokenizer,
            store=self.rollouts,
            checkpoint_cid=lambda epoch: self.publisher.cids[epoch],
            dht=dht,
        )
        self.publisher = EpochPublisher(spec=spec, store=store, server=server, attester=self.attester,
                                        progress_path=Path(self.output_dir) / "progress.json")  # fmt: skip

    def __call__(self, record) -> None:
        self.publisher(record)

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()

    def summary(self) -> dict:
        return {
            "peer": self.account.address,
            "receipts": len(self.attester.published) if self.attester else 0,
            "history": self.publisher.history if self.publisher else [],
        }


def attested_peer(spec, config, *, account, store, rollouts, clients=None, start: str | None = "promoted"):
    """The `Peer` of `hivetune join --key-file`: starts from `start` (promoted | CID | base), attests every epoch."""
    from coordination.chain.eip712 import attest_domain
    from coordination.swarm.peer import Peer

    cid = start_checkpoint(spec, clients=clients, start=start)
    domain = clients.ledger.domain().as_dict() if clients is not None else attest_domain(chain_id=spec_chain_id(spec))
    hook = AttestationHook(account=account, rollouts=rollouts, domain=domain, output_dir=config.output_dir)
    return Peer(spec, config, address=account.address, start_cid=cid, store=store, hook=hook)


def spec_chain_id(spec) -> int:
    return spec.chain.chain_id if getattr(spec, "chain", None) else 31337
