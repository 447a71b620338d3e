"""Peers of a run: the bootstrap (entry) node and the training `Peer`. The CLI and the demo call these.

    node = start_bootstrap(spec, host_maddrs=["/ip4/0.0.0.0/tcp/31337"], identity_path="boot.key")
    print(node.maddrs)                      # share these; node.shutdown() when done
    result = Peer(spec, PeerConfig(initial_peers=tuple(node.maddrs), max_epochs=20), hook=attester).run()

`Peer` (below) is the one training peer: plain and attested peers differ only by the hook they pass
(coordination.governance.joining builds the attestation hook and the start checkpoint).
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
    use_owner_key,
    visible_maddrs,
)
from coordination.swarm.runspec import RunSpec
from coordination.swarm.status import PeerStatus, StatusLine, publish_peer_status

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
    epoch_times: list = field(default_factory=list)  # per epoch: wall, generation, backward, round phases (s)


def peer_label_address(peer_id: str) -> str:
    """A stable 20-byte hex address derived from a libp2p peer id, for prompt assignment when no Ethereum
    address is given (the attestation layer should pass the peer's real address)."""
    return "0x" + hashlib.sha256(f"hivetune/peer/{peer_id}".encode()).digest()[:20].hex()


def grpo_config_from_spec(spec: RunSpec, *, output_dir: str, report_to: str, seed: int | None = None, **overrides):
    """TRL GRPOConfig for one local step of the spec; max_steps is a safety cap (epochs stop training)."""
    from trl import GRPOConfig

    g = spec.grpo
    kwargs = dict(
        **g.trl_kwargs(),  # the shared section (trainer.config.GrpoSection); its names are GRPOConfig's
        output_dir=output_dir,
        max_completion_length=g.max_completion_length,
        seed=g.seed if seed is None else seed,
        max_steps=10**6,
        logging_steps=1,
        save_strategy="no",
        report_to=report_to,
        disable_tqdm=True,
        use_cpu=not _cuda_available(),
        bf16=_cuda_available(),  # TRL defaults to bf16 autocast even on CPU: slower there, and less exact
        dataloader_num_workers=0,
    )
    kwargs.update(overrides)
    return GRPOConfig(**kwargs)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def make_optimizer_factory(
    spec: RunSpec, dht, *, store, server, fresh_lora: bool, journal_path=None, address=None, **kw
):
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
            model=model,
            dht=dht,
            spec=spec,
            store=store,
            server=server,
            journal_path=journal_path,
            address=address,
            **kw,
        )
        consensus.start()
        return ConsensusOptimizer(consensus, weight=spec.samples_per_local_step)

    return factory


@dataclass(frozen=True, kw_only=True)
class PeerConfig:
    """How one peer process takes part in a run (the options of `hivetune join`)."""

    initial_peers: tuple[str, ...] = ()
    host_maddrs: tuple[str, ...] = tuple(DEFAULT_HOST_MADDRS)
    identity_path: str | None = None  # libp2p key file: the peer id (and its shared multiaddr) survive restarts
    client_mode: bool = False  # behind NAT: outbound connections only, never a reducer
    max_epochs: int | None = None  # stop at this epoch of the run (a restarted peer continues, it does not redo)
    output_dir: str = "outputs/peer"  # journal (consensus.json), checkpoints, final adapter
    owner_key_path: str | None = None  # RSA key of our DHT records (epoch board, receipts): kept across restarts
    linger_timeout: float = 120.0  # s a finished peer keeps serving its final state to peers still behind
    report_to: str | None = None  # wandb | none (default: wandb, offline unless logged in)
    show_status: bool = True


class Peer:
    """The one training peer of a run; `hivetune join` (plain or attested) and the demo all run this.

    1. starts its DHT (retries, then a SwarmError saying what to check) and checks that the swarm runs
       the same spec (else names the differing fields);
    2. serves its checkpoint store over libp2p; loads the base, with `start_cid` (fetched by CID and
       verified block by block) as the trainable adapter, or the run's seeded fresh LoRA;
    3. joins the swarm's head epoch (restart, late joiner: coordination.swarm.consensus) and trains with
       SwarmGRPOTrainer on its epoch-aware prompt assignment for `address` until `max_epochs`;
    4. calls `hook(record)` after every epoch (the attestation hook; `hook.bind(...)` first, if it has
       one), then `on_ready(result, dht)` while its servers are still up (e.g. keep serving).

        result = Peer(spec, PeerConfig(initial_peers=[maddr], max_epochs=10), address="0x...").run()
    """

    def __init__(self, spec: RunSpec, config: PeerConfig, *, address: str | None = None, start_cid: str | None = None,
                 store=None, hook=None, dht=None, parts: dict | None = None):  # fmt: skip
        self.spec, self.config, self.address, self.start_cid = spec, config, address, start_cid
        self.store, self.hook, self._dht = store, hook, dht
        self.parts = dict(parts or {})  # tests: model, tokenizer, dataset, reward_funcs, grpo/consensus overrides

    def run(self, on_ready: Callable | None = None) -> PeerResult:
        cfg, spec = self.config, self.spec
        leader = int(os.environ.get("RANK", "0")) == 0  # under `accelerate launch`, only rank 0 joins the swarm
        dht = self._dht
        if leader and cfg.owner_key_path is not None:
            use_owner_key(cfg.owner_key_path)
        if dht is None and leader:
            dht = start_dht(initial_peers=cfg.initial_peers, host_maddrs=cfg.host_maddrs,
                            identity_path=cfg.identity_path, client_mode=cfg.client_mode)  # fmt: skip
        status_line, server = StatusLine(enabled=cfg.show_status and leader), None
        try:
            store = self.store or _default_store(cfg.output_dir)
            if leader:
                check_run_spec(dht, spec)
                server = _start_server(dht, store, spec)
            model, tokenizer = self._start_model(dht, store)  # fetches + verifies start_cid first
            if self.start_cid and server is not None:
                server.announce(self.start_cid)
            if leader and hasattr(self.hook, "bind"):
                self.hook.bind(dht=dht, store=store, server=server, tokenizer=tokenizer, spec=spec)
            trainer = _build_trainer(spec, dht=dht, store=store, server=server, model=model, tokenizer=tokenizer,
                                     address=self.address, config=cfg, hook=self.hook if leader else None,
                                     status_line=status_line, parts=self.parts)  # fmt: skip
            try:
                trainer.train()
                result = _finish(trainer, cfg.output_dir)
                if trainer.swarm_optimizer is not None:  # stragglers of our last round may still need its state
                    trainer.swarm_optimizer.flush()  # (our last posts land before linger's "done")
                    trainer.swarm_optimizer.consensus.linger(timeout=cfg.linger_timeout)
            finally:
                if trainer.swarm_optimizer is not None:
                    trainer.swarm_optimizer.shutdown()
            if on_ready is not None:  # every rank reports (followers with dht=None)
                on_ready(result, dht)
            return result
        finally:
            status_line.close()
            if hasattr(self.hook, "close"):
                self.hook.close()
            if server is not None:
                server.stop()
            if self._dht is None and dht is not None:
                dht.shutdown()

    def _start_model(self, dht, store):
        """(model, tokenizer): the run's pinned base with checkpoint `start_cid` (fetched + verified) as adapter."""
        if "model" in self.parts:
            return self.parts["model"], self.parts.get("tokenizer")
        from coordination.checkpoints.resolve import resolve_adapter
        from trainer.base_models import load_pinned_base

        cid, spec = self.start_cid, self.spec
        adapter = None if cid is None else resolve_adapter(cid, store, dht=dht, prefix=spec.run_id)
        return load_pinned_base(**spec.model.pins, adapter_dir=adapter, trainable=True)  # refuses an off-spec base


def run_peer(spec: RunSpec, *, on_epoch_end: Callable | None = None, peer_address: str | None = None, dht=None,
             store=None, parts: dict | None = None, **config) -> PeerResult:  # fmt: skip
    """`Peer(spec, PeerConfig(**config), ...).run()`: one peer with a plain per-epoch callback."""
    return Peer(spec, PeerConfig(**config), address=peer_address, store=store, hook=on_epoch_end, dht=dht,
                parts=parts).run()  # fmt: skip


def _default_store(output_dir: str):
    from coordination.checkpoints.store import CheckpointStore

    return CheckpointStore(Path(output_dir) / "checkpoints")


def _start_server(dht, store, spec):
    from coordination.checkpoints.server import CheckpointServer

    return CheckpointServer(dht=dht, store=store, prefix=spec.run_id).start()


def _build_trainer(spec, *, dht, store, server, model, tokenizer, address, config, hook, status_line, parts):
    from coordination.attest.assignment import assigned_indices
    from coordination.swarm.swarm_trainer import Assignment, SwarmGRPOTrainer
    from trainer.grpo import build_grpo_trainer, prompt_dataset
    from trainer.reporting import default_report_to, prepare_reporting
    from trainer.tasks import get_task

    task = get_task(spec.task.name, **spec.task.params)
    report_to = config.report_to or default_report_to()
    prepare_reporting(report_to)  # wandb offline unless logged in
    grpo_config = grpo_config_from_spec(  # under accelerate this also sets up torch.distributed
        spec, output_dir=config.output_dir, report_to=report_to, **parts.get("grpo_overrides", {})
    )
    # every rank of a peer works on the peer's assignment (rank 0's id or the given address), epoch by epoch
    address = address or _leader_value(peer_label_address(str(dht.peer_id)) if dht is not None else None)
    dataset = parts.get("dataset") or prompt_dataset(
        task, spec.task.seed, assigned_indices(spec.run_id, 0, address, 64), tokenizer=tokenizer
    )
    factory = make_optimizer_factory(
        spec, dht, store=store, server=server, fresh_lora=not _is_peft(model),
        journal_path=Path(config.output_dir) / "consensus.json", address=address,
        **parts.get("consensus_overrides", {}),
    )  # fmt: skip
    trainer_cls = partial(
        SwarmGRPOTrainer,
        optimizer_factory=factory,
        max_epochs=config.max_epochs,
        on_epoch_end=hook,
        on_local_step=partial(
            _report_progress, dht=dht, spec=spec, line=status_line, client_mode=config.client_mode, last={"t": 0.0}
        ),  # fmt: skip
        assignment=Assignment(spec.run_id, address, task, spec.task.seed, tokenizer),
    )
    return build_grpo_trainer(
        model=model,
        tokenizer=tokenizer,
        task=task,
        dataset=dataset,
        grpo_config=grpo_config,
        lora_config=None if _is_peft(model) else spec.lora.peft_config(),  # a PeftModel brings its adapter
        trainer_cls=trainer_cls,
        reward_funcs=parts.get("reward_funcs"),
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
        epoch_times=list(getattr(trainer, "epoch_times", [])),
    )
    return result
