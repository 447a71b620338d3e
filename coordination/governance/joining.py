"""Join a public run: start from the promoted checkpoint, train with the swarm, attest every epoch.

What `hivetune join --key ...` does on top of the plain swarm peer:

1. **Start point.** The run's latest promoted checkpoint (`CheckpointRegistry.current`), or a CID
   given with `--from`, is fetched by CID from the swarm, verified block by block, and loaded as
   the trainable adapter. Without either, training starts from a fresh LoRA on the base model.
2. **Assigned prompts.** Each epoch's prompts are `assigned_indices(run id, epoch, peer address)`
   in slot order (`AssignedPromptsTrainer`), so validators can recompute them and nobody picks
   easy samples.
3. **Per-epoch attestation.** At each epoch end the rollouts become signed records + an EIP-712
   work receipt (`EpochAttester`) under the epoch's *canonical* checkpoint: the state every member
   of the swarm's round held when the rollouts were generated (coordination.swarm.consensus),
   published in the DHT and served to validators.
4. **Final checkpoint.** The canonical state of the last epoch; with `serve`, the peer keeps
   serving checkpoints and rollout records until it is stopped.

    result = join_public_run(spec, initial_peers=[maddr], account=acct, clients=clients,
                             store=CheckpointStore(), rollouts=RolloutDirectory("rollouts"), max_epochs=4)
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from coordination.attest.assignment import assigned_indices
from coordination.swarm.swarm_trainer import SwarmGRPOTrainer

logger = logging.getLogger(__name__)


@dataclass
class Assignment:
    """Which prompts a peer must work on: the run, the peer's address, the task and its seed."""

    run_id: str
    peer: str
    task: object
    task_seed: int

    def row(self, epoch: int, slot: int) -> dict:
        """The dataset row (as `trainer.grpo.prompt_dataset` builds it) of `slot` in `epoch`."""
        index = assigned_indices(self.run_id, epoch, self.peer, slot + 1)[slot]
        sample = self.task.sample(self.task_seed, index)
        return {
            "prompt": self.task.prompt(sample),
            "answer": sample.answer,
            "problem": sample.to_json(),
            "seed": sample.seed,
            "index": sample.index,
        }


class AssignedPromptsTrainer(SwarmGRPOTrainer):
    """A SwarmGRPOTrainer whose prompts are the peer's assignment for the current hivemind epoch.

    TRL's sampler hands over each prompt `num_generations` times in a row; every such group is
    rewritten to the next slot of the epoch's assignment (slot 0 again when the epoch advances).
    One process per peer: under `accelerate launch` ranks would draw the same slots.
    """

    def __init__(self, *args, assignment: Assignment, **kwargs):
        super().__init__(*args, **kwargs)
        self.assignment = assignment
        self._assign_epoch, self._next_slot = None, 0

    def _generate_and_score_completions(self, inputs):
        return super()._generate_and_score_completions(self.assigned_inputs(inputs))

    def assigned_inputs(self, inputs: list[dict]) -> list[dict]:
        epoch = self.swarm_epoch
        if epoch != self._assign_epoch:
            self._assign_epoch, self._next_slot = epoch, 0
        out, previous, row = [], object(), None
        for x in inputs:
            key = (x.get("index"), x.get("prompt"))
            if key != previous:
                row, previous = self.assignment.row(epoch, self._next_slot), key
                self._next_slot += 1
            out.append({**x, **row})
        return out


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

            from trainer.models import load_model_and_tokenizer

            base, _ = load_model_and_tokenizer(self.spec.model.base)
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
            shadow = self.shadow_of(record.model, record.adapter_state)
            outcome = getattr(record, "outcome", None)
            cid = (
                outcome.start_cid
                if outcome is not None and outcome.start_cid
                else self.publish(shadow, step=record.epoch)
            )
            self.cids[record.epoch] = cid
            if self.attester is not None:
                self.attester(dataclasses.replace(record, model=shadow, adapter_state={}))
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


def load_start_model(spec, cid: str | None, *, store, dht):
    """(model, tokenizer): the base, with the checkpoint `cid` (fetched + verified) as trainable adapter."""
    from trainer.models import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(spec.model.base)
    if cid is None:
        return model, tokenizer
    from peft import PeftModel

    from coordination.checkpoints.resolve import resolve_adapter

    adapter = resolve_adapter(cid, store, dht=dht, prefix=spec.run_id)
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True), tokenizer


@dataclass
class JoinResult:
    peer: str
    start_checkpoint: str | None
    final_checkpoint: str | None
    epochs: int
    receipts: int
    history: list
    maddrs: list[str]

    def to_json(self) -> dict:
        return dict(vars(self))


def join_public_run(
    spec,
    *,
    initial_peers,
    account,
    store,
    rollouts,
    clients=None,
    start: str | None = "promoted",
    max_epochs: int | None = None,
    output_dir: str = "outputs/peer",
    host_maddrs=None,
    identity_path: str | None = None,
    client_mode: bool = False,
    report_to: str | None = None,
    show_status: bool = True,
    on_ready=None,
):
    """Run one attested peer of a public run (see module docstring); returns a JoinResult.

    `on_ready(result, dht)` is called after training with the final checkpoint announced, while
    the DHT and servers are still up (the CLI uses it to keep serving until Ctrl-C).
    """
    from coordination.attest.epoch_hook import EpochAttester
    from coordination.attest.p2p_serving import RolloutServer
    from coordination.attest.typed_data import attest_domain
    from coordination.checkpoints.server import CheckpointServer
    from coordination.swarm.dht_node import DEFAULT_HOST_MADDRS, check_run_spec, start_dht, visible_maddrs
    from coordination.swarm.peer import run_peer
    from trainer.tasks import get_task

    dht = start_dht(
        initial_peers=initial_peers,
        host_maddrs=host_maddrs or DEFAULT_HOST_MADDRS,
        identity_path=identity_path,
        client_mode=client_mode,
    )
    servers = []
    try:
        check_run_spec(dht, spec)
        cid = start_checkpoint(spec, clients=clients, start=start)
        model, tokenizer = load_start_model(spec, cid, store=store, dht=dht)
        task = get_task(spec.task.name, **spec.task.params)
        domain = (
            clients.ledger.domain().as_dict() if clients is not None else attest_domain(chain_id=spec_chain_id(spec))
        )
        ckpt_server = CheckpointServer(dht=dht, store=store, prefix=spec.run_id).start()
        servers.append(ckpt_server)
        if cid is not None:
            ckpt_server.announce(cid)
        servers.append(RolloutServer(dht=dht, store=rollouts, prefix=spec.run_id).start())
        attester = EpochAttester(
            account=account,
            run_id=spec.run_id,
            domain=domain,
            task=task,
            tokenizer=tokenizer,
            store=rollouts,
            checkpoint_cid=lambda epoch: publisher.cids[epoch],
            dht=dht,
        )
        publisher = EpochPublisher(
            spec=spec,
            store=store,
            server=ckpt_server,
            attester=attester,
            progress_path=Path(output_dir) / "progress.json",
        )
        assignment = Assignment(spec.run_id, account.address, task, spec.task.seed)
        from functools import partial

        peer = run_peer(
            spec,
            initial_peers=initial_peers,
            dht=dht,
            max_epochs=max_epochs,
            on_epoch_end=publisher,
            output_dir=output_dir,
            model=model,
            tokenizer=tokenizer,
            peer_address=account.address,
            report_to=report_to,
            show_status=show_status,
            store=store,
            server=ckpt_server,
            trainer_cls=partial(AssignedPromptsTrainer, assignment=assignment),
        )
        final = peer.cids.get(str(peer.epochs))  # the canonical state of the last epoch (already announced)
        result = JoinResult(
            peer=account.address,
            start_checkpoint=cid,
            final_checkpoint=final,
            epochs=peer.epochs,
            receipts=len(attester.published),
            history=publisher.history,
            maddrs=visible_maddrs(dht),
        )
        if on_ready is not None:
            on_ready(result, dht)
        return result
    finally:
        for server in reversed(servers):
            server.stop()
        dht.shutdown()


def spec_chain_id(spec) -> int:
    return spec.chain.chain_id if getattr(spec, "chain", None) else 31337
