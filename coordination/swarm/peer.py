"""Peers of a run: the bootstrap (entry) node and a training peer. The CLI and the demo call these.

    node = start_bootstrap(spec, host_maddrs=["/ip4/0.0.0.0/tcp/31337"], identity_path="boot.key")
    print(node.maddrs)                      # share these; node.shutdown() when done
    result = run_peer(spec, initial_peers=node.maddrs, max_epochs=20, on_epoch_end=print)

A training peer: starts its DHT (retries, then a SwarmError saying what to check), checks that
the swarm runs the same spec (else names the differing fields), loads model + LoRA + task from
the spec, downloads the swarm's state if it is behind (late joiner), then trains with
SwarmGRPOTrainer until `max_epochs` hivemind epochs, publishing its status to the DHT.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from coordination.swarm.dht_node import (
    DEFAULT_HOST_MADDRS,
    SPEC_TTL_S,
    check_run_spec,
    publish_run_spec,
    start_dht,
    visible_maddrs,
)
from coordination.swarm.runspec import RunSpec
from coordination.swarm.status import PeerStatus, StatusLine, default_report_to, publish_peer_status

logger = logging.getLogger(__name__)


class BootstrapNode:
    """A DHT entry point that announces the run spec (and re-announces it before it expires)."""

    def __init__(self, *, spec: RunSpec, dht, republish_every_s: float = SPEC_TTL_S / 3):
        self.spec, self.dht = spec, dht
        self._stop = threading.Event()
        publish_run_spec(dht, spec)
        self._thread = threading.Thread(target=self._republish, args=(republish_every_s,), daemon=True)
        self._thread.start()

    @property
    def maddrs(self) -> list[str]:
        return visible_maddrs(self.dht)

    def _republish(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            publish_run_spec(self.dht, self.spec)

    def shutdown(self) -> None:
        self._stop.set()
        self.dht.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


def start_bootstrap(
    spec: RunSpec,
    *,
    host_maddrs: Sequence[str] = DEFAULT_HOST_MADDRS,
    announce_maddrs: Sequence[str] | None = None,
    identity_path: str | None = None,
    initial_peers: Sequence[str] = (),
) -> BootstrapNode:
    """Start the run's entry DHT node. Fix the port for a public run (`/ip4/0.0.0.0/tcp/31337`) and keep
    `identity_path` so the shared multiaddr stays valid across restarts."""
    dht = start_dht(
        initial_peers=initial_peers,
        host_maddrs=host_maddrs,
        announce_maddrs=announce_maddrs,
        identity_path=identity_path,
    )
    return BootstrapNode(spec=spec, dht=dht)


@dataclass
class PeerResult:
    peer_id: str
    epochs: int
    local_steps: int
    rounds: list = field(default_factory=list)  # RoundStats of every gradient-averaging round
    rejected_parts: int = 0  # rounds this peer's contribution missed (it adopted the canonical state)
    adapter_dir: str | None = None
    cids: dict = field(default_factory=dict)  # epoch -> canonical state CID, as this peer holds them


def peer_label_address(peer_id: str) -> str:
    """A stable 20-byte hex address derived from a libp2p peer id, for prompt assignment when no Ethereum
    address is given (the attestation layer should pass the peer's real address)."""
    return "0x" + hashlib.sha256(f"hivetune/peer/{peer_id}".encode()).digest()[:20].hex()


def grpo_config_from_spec(spec: RunSpec, *, output_dir: str, report_to: str, seed: int | None = None, **overrides):
    """TRL GRPOConfig for one local step of the spec; max_steps is a safety cap (epochs stop training)."""
    from trl import GRPOConfig

    g = spec.grpo
    kwargs = dict(
        output_dir=output_dir,
        learning_rate=g.learning_rate,
        per_device_train_batch_size=g.per_device_train_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        beta=g.beta,
        max_grad_norm=g.max_grad_norm,
        seed=g.seed if seed is None else seed,
        max_steps=10**6,
        logging_steps=1,
        save_strategy="no",
        report_to=report_to,
        disable_tqdm=True,
        use_cpu=not _cuda_available(),
        bf16=_cuda_available(),  # TRL defaults to bf16 autocast even on CPU: slower there, and less exact
        dataloader_num_workers=0,
        gradient_checkpointing=False,  # tiny models on CPU: recomputation costs more than it saves
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def lora_config_from_spec(spec: RunSpec):
    from peft import LoraConfig

    lora = spec.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )


def make_optimizer_factory(spec: RunSpec, dht, *, store, server, fresh_lora: bool, journal_path=None, **kw):
    """model -> ConsensusOptimizer; first joins the swarm's head epoch (restart, late joiner) by fetching its state.

    :param fresh_lora: the adapter is new (not loaded from a checkpoint): give it the run's seeded init, so every
        peer starts from the same epoch-0 state.
    """
    from coordination.swarm.consensus import EpochConsensus
    from coordination.swarm.consensus_optimizer import ConsensusOptimizer
    from coordination.swarm.training_state import seeded_lora_init

    def factory(model):
        if fresh_lora:
            seeded_lora_init(model, spec.run_id)
        consensus = EpochConsensus(
            model=model, dht=dht, spec=spec, store=store, server=server, journal_path=journal_path, **kw
        )
        consensus.start()
        return ConsensusOptimizer(consensus, weight=spec.samples_per_local_step)

    return factory


def run_peer(
    spec: RunSpec,
    *,
    initial_peers: Sequence[str],
    identity_path: str | None = None,
    host_maddrs: Sequence[str] = DEFAULT_HOST_MADDRS,
    client_mode: bool = False,
    max_epochs: int | None = None,
    on_epoch_end: Callable | None = None,
    output_dir: str = "outputs/peer",
    model=None,
    tokenizer=None,
    dataset=None,
    reward_funcs=None,
    peer_address: str | None = None,
    num_prompts: int = 4096,
    seed: int | None = None,
    report_to: str | None = None,
    show_status: bool = True,
    dht=None,
    store=None,
    server=None,
    consensus_overrides: dict | None = None,
    grpo_overrides: dict | None = None,
    trainer_cls: type | None = None,
) -> PeerResult:
    """Train one peer of `spec`'s run until `max_epochs` hivemind epochs.

    :param on_epoch_end: called with an EpochRecord (epoch, rollouts with seed/index/completion/rewards,
        the LoRA state that generated them, the model) after every epoch: the attestation hook.
    :param model, tokenizer, dataset, reward_funcs: override what the spec would build (tests, demo).
    :param peer_address: Ethereum address used for prompt assignment; default derived from the peer id.
    :param dht: reuse a running DHT (it is then not shut down here).
    :param store, server: CheckpointStore for epoch states and contributions (default: under output_dir) and the
        CheckpointServer that serves them (default: one started here).
    :param trainer_cls: a SwarmGRPOTrainer subclass (e.g. one that draws each epoch's assigned prompts);
        a `model` that is already a PeftModel (a fetched checkpoint) is trained as is, without a new LoRA.
    """
    leader = int(os.environ.get("RANK", "0")) == 0  # under `accelerate launch`, only rank 0 joins the swarm
    own_dht = dht is None and leader
    if own_dht:
        dht = start_dht(
            initial_peers=initial_peers, host_maddrs=host_maddrs, identity_path=identity_path, client_mode=client_mode
        )
    status_line = StatusLine(enabled=show_status and leader)
    own_server = server is None and leader
    try:
        if leader:
            check_run_spec(dht, spec)
        if store is None:
            from coordination.checkpoints.store import CheckpointStore

            store = CheckpointStore(Path(output_dir) / "checkpoints")
        if own_server:
            from coordination.checkpoints.server import CheckpointServer

            server = CheckpointServer(dht=dht, store=store, prefix=spec.run_id).start()
        trainer = _build_trainer(
            spec,
            dht=dht,
            max_epochs=max_epochs,
            on_epoch_end=on_epoch_end,
            output_dir=output_dir,
            model=model,
            tokenizer=tokenizer,
            dataset=dataset,
            reward_funcs=reward_funcs,
            peer_address=peer_address,
            num_prompts=num_prompts,
            seed=seed,
            report_to=report_to,
            store=store,
            server=server,
            on_local_step=partial(
                _report_progress, dht=dht, spec=spec, line=status_line, client_mode=client_mode, last={"t": 0.0}
            ),
            consensus_overrides=consensus_overrides or {},
            grpo_overrides=grpo_overrides or {},
            trainer_cls=trainer_cls,
        )
        try:
            trainer.train()
            return _finish(trainer, output_dir)
        finally:
            if trainer.swarm_optimizer is not None:
                trainer.swarm_optimizer.shutdown()
    finally:
        status_line.close()
        if own_server and server is not None:
            server.stop()
        if own_dht:
            dht.shutdown()


def _build_trainer(spec, *, dht, peer_address, num_prompts, model, tokenizer, dataset, reward_funcs, seed, **kw):
    from coordination.attest.assignment import assigned_indices
    from coordination.swarm.swarm_trainer import SwarmGRPOTrainer
    from trainer.grpo import build_grpo_trainer, prompt_dataset
    from trainer.tasks import get_task

    task = get_task(spec.task.name, **spec.task.params)
    if model is None:
        from trainer.models import load_model_and_tokenizer

        model, loaded_tokenizer = load_model_and_tokenizer(spec.model.base)
        tokenizer = tokenizer or loaded_tokenizer
    report_to = kw["report_to"] or default_report_to()
    grpo_config = grpo_config_from_spec(  # under accelerate this also sets up torch.distributed
        spec, output_dir=kw["output_dir"], report_to=report_to, seed=seed, **kw["grpo_overrides"]
    )
    if dataset is None:  # every rank of a peer draws from the peer's assignment (rank 0's id or the given address)
        address = peer_address or _leader_value(peer_label_address(str(dht.peer_id)) if dht is not None else None)
        dataset = prompt_dataset(task, spec.task.seed, assigned_indices(spec.run_id, 0, address, num_prompts))
    world = max(1, grpo_config.world_size)
    del world  # ranks of one peer share its assignment; the peer's weight is its assignment
    factory = make_optimizer_factory(
        spec,
        dht,
        store=kw["store"],
        server=kw["server"],
        fresh_lora=not _is_peft(model),
        journal_path=Path(kw["output_dir"]) / "consensus.json",
        **kw["consensus_overrides"],
    )
    trainer_cls = partial(
        kw.get("trainer_cls") or SwarmGRPOTrainer,
        optimizer_factory=factory,
        max_epochs=kw["max_epochs"],
        on_epoch_end=kw["on_epoch_end"],
        on_local_step=kw["on_local_step"],
    )
    return build_grpo_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        dataset=dataset,
        grpo_config=grpo_config,
        lora_config=None if _is_peft(model) else lora_config_from_spec(spec),  # a PeftModel brings its adapter
        trainer_cls=trainer_cls,
        reward_funcs=reward_funcs,
    )


def _is_peft(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def _leader_value(value):
    """`value` as rank 0 has it, on every rank (identity when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _report_progress(trainer, *, dht, spec, line: StatusLine, client_mode: bool, last: dict, every_s=5.0) -> None:
    """Update the status line every local step; publish to the DHT every `every_s` and at every new epoch."""
    opt = trainer.swarm_optimizer
    if opt is None:
        return
    metrics = trainer.swarm_metrics()
    rewards = [r.reward for r in trainer._rollouts[-64:]]
    status = PeerStatus(
        peer_id=str(dht.peer_id),  # only rank 0 (which has the DHT) reports
        epoch=opt.local_epoch,
        local_steps=trainer.state.global_step,
        samples=trainer.state.global_step * spec.samples_per_local_step,
        peers=int(metrics.get("swarm/peers", 0)),
        global_samples_per_s=metrics.get("swarm/global_samples_per_s", 0.0),
        round_group_size=int(metrics.get("swarm/round_group_size", 0)),
        round_seconds=metrics.get("swarm/round_seconds", 0.0),
        round_bytes_sent=int(metrics.get("swarm/round_bytes_sent", 0)),
        rejected_parts=opt.rejected_parts,
        reward_mean=sum(rewards) / len(rewards) if rewards else None,
        client_mode=client_mode,
    )
    line.update(status)
    now = time.monotonic()
    if now - last["t"] > every_s or status.epoch != last.get("epoch"):
        last.update(t=now, epoch=status.epoch)
        try:
            publish_peer_status(dht, spec.run_id, status)
        except Exception as exc:  # status is best effort; never stop training for it
            logger.warning(f"could not publish status: {exc}")


def _finish(trainer, output_dir: str) -> PeerResult:
    opt = trainer.swarm_optimizer
    adapter_dir = None
    if trainer.accelerator.is_main_process:
        adapter_dir = str(Path(output_dir) / "adapter")
        trainer.save_model(adapter_dir)
    result = PeerResult(
        peer_id=str(opt.dht.peer_id) if opt is not None else "",
        epochs=opt.local_epoch if opt is not None else 0,
        local_steps=trainer.state.global_step,
        rounds=list(opt.rounds) if opt is not None else [],
        rejected_parts=opt.rejected_parts if opt is not None else 0,
        adapter_dir=adapter_dir,
        cids={str(k): v for k, v in sorted(opt.consensus.canonical_cids.items())} if opt is not None else {},
    )
    return result
