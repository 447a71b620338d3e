"""The optimizer a Trainer sees in a swarm: one `step()` = one epoch of the run (`EpochConsensus`).

The Trainer accumulates this peer's whole epoch assignment (``per_device_train_batch_size x
gradient_accumulation_steps`` completions), clips it to ``max_grad_norm`` and calls ``step()``; the
step commits the gradient, averages it with the group, applies the deterministic AdamW update and
leaves the model holding the epoch's canonical state. The LR shown in ``param_groups`` is
``lr_at(spec, epoch)``; nothing else ever changes the parameters.

    opt = ConsensusOptimizer(consensus, weight=spec.samples_per_local_step)
    loss.backward(); clip_grad_norm_(lora_parameters(model), 1.0); opt.step(); opt.zero_grad()
    opt.local_epoch, opt.last_round      # RoundStats(epoch, group_size, seconds, bytes_sent_estimate, ok, phases)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import torch

from coordination.swarm.training_state import lora_named_parameters, lr_at

logger = logging.getLogger(__name__)

WIRE_BYTES_PER_ELEMENT = {"fp16": 2, "none": 4}


def lora_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable (LoRA) parameters of a PEFT model, in module order; the frozen base is never averaged."""
    return [p for _, p in lora_named_parameters(model)]


def adapter_wire_bytes(params, compression: str) -> int:
    """S: bytes of one full gradient vector on the wire (all LoRA params) under `compression`."""
    return sum(p.numel() for p in params) * WIRE_BYTES_PER_ELEMENT[compression]


def butterfly_bytes_sent(wire_bytes: int, group_size: int) -> int:
    """Bytes one peer sends in a butterfly all-reduce with equal shares: 2(n-1)/n * S."""
    return 0 if group_size <= 1 else int(2 * (group_size - 1) / group_size * wire_bytes)


@dataclass
class RoundStats:
    epoch: int
    group_size: int  # members of the canonical round of this epoch
    seconds: float  # from ready to holding the canonical state
    bytes_sent_estimate: int  # 2(n-1)/n * S; measure real traffic with bench/swarm_comm.py
    ok: bool  # this peer's contribution entered the canonical round
    phases: dict = field(default_factory=dict)  # s per round phase + "step" (the whole step; epoch_timing)
    spans: dict = field(default_factory=dict)  # phase -> (unix start, end): align outside counters with a phase


class ConsensusOptimizer(torch.optim.Optimizer):
    """torch Optimizer facade over an EpochConsensus (see module docstring).

    With the run's ``averaging.delayed_updates`` (hivemind's delayed parameter updates, DPU), ``step()`` at the
    end of epoch k's compute waits for the round of epoch k-1 (running since the last step), loads its canonical
    state k into the model, starts the round of epoch k in a background thread and returns: epoch k+1 generates
    and backpropagates on state k while epoch k is averaged and applied to it. Every peer still applies the
    same aggregate to the same canonical state, so every state keeps one CID; only the rollouts are one epoch
    stale (``rollout_state_epoch``). ``local_epoch`` is the epoch being computed, ``settled_epoch`` the state
    the last finished round produced; ``stop_at`` (the trainer's max_epochs) makes the last round synchronous.
    """

    def __init__(self, consensus, *, weight: float, stop_at: int | None = None):
        self.consensus, self.weight, self.stop_at = consensus, float(weight), stop_at
        self.named = lora_named_parameters(consensus.model)
        super().__init__([p for _, p in self.named], {"lr": lr_at(consensus.spec, consensus.epoch)})
        self.wire_bytes = adapter_wire_bytes([p for _, p in self.named], consensus.spec.averaging.compression)
        self.rounds: list[RoundStats] = []
        self.last_round: RoundStats | None = None
        self.dht = consensus.dht
        self.delayed = bool(consensus.delayed)
        self._pending = None  # the background round (delayed updates): a Future of its EpochOutcome
        self._executor = None
        self._poster = None  # delayed updates: posts "working on epoch k+1" off the compute's path
        self._posted = None  # ... a Future of the last such post
        self._compute_epoch = consensus.first_compute_epoch()
        self._settled_epoch = consensus.epoch
        if self.delayed:
            from concurrent.futures import ThreadPoolExecutor

            consensus.load_model = False  # rounds leave the model alone; step() loads each state between epochs
            if self._compute_epoch == consensus.epoch > 0:  # (re)joined at h, computes h: on state h-1
                consensus.load_rollout_state(self._compute_epoch)
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivetune-round")
            self._poster = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hivetune-post")

    @property
    def local_epoch(self) -> int:
        """The epoch of the run whose rollouts this peer computes now (its prompt assignment and seeds)."""
        return self._compute_epoch if self.delayed else self.consensus.epoch

    @property
    def settled_epoch(self) -> int:
        """The epoch of the last canonical state this peer holds (= local_epoch without delayed updates)."""
        return self._settled_epoch if self.delayed else self.consensus.epoch

    @property
    def rejected_parts(self) -> int:
        """Rounds this peer's contribution did not enter (it adopted the canonical state instead)."""
        return sum(not r.ok for r in self.rounds)

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("ConsensusOptimizer.step takes no closure")
        started = time.perf_counter()
        grads = {
            n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().cpu().clone()
            for n, p in self.named
        }
        if self.delayed:
            self._step_delayed(grads, started)
            return None
        self._record(self.consensus.finish_epoch(grads, weight=self.weight))
        self._set_lr(self.consensus.epoch)
        self.consensus.begin_epoch()
        self.last_round.phases["step"] = time.perf_counter() - started
        return None

    def _step_delayed(self, grads, started: float) -> None:
        consensus, epoch = self.consensus, self._compute_epoch  # grads: epoch's, computed on state epoch-1
        self.flush()  # the round of epoch-1: consensus.state is now canonical state `epoch` (or later)
        if consensus.epoch < epoch:  # (re)joined holding state epoch-1: adopt epoch's state before its round
            consensus.catch_up(epoch)
        if consensus.epoch > epoch:  # the swarm finished our epoch without us: these gradients are too late
            logger.warning(f"epoch {epoch}: the swarm is at epoch {consensus.epoch}; dropping this epoch's gradients")
            consensus.state.load_into(consensus.model)
            self._settled_epoch, self._compute_epoch = consensus.epoch, consensus.epoch + 1
        else:
            consensus.state.load_into(consensus.model)  # epoch+1 computes on state epoch ...
            self._settled_epoch, self._compute_epoch = epoch, epoch + 1
            # ... while epoch's round runs in the background (it touches consensus.state only, never the model)
            self._pending = self._executor.submit(consensus.finish_epoch, grads, weight=self.weight)
        self._set_lr(self._compute_epoch)
        # a DHT store of two signed records, 15-55 ms on a quiet loopback: posted beside the compute, not before it
        self._posted = self._poster.submit(consensus.begin_epoch, self._compute_epoch)
        if self.stop_at is not None and self._compute_epoch >= self.stop_at:
            self.adopt_final_state()  # the last round: the peer stops holding its final state
        if self.last_round is not None:
            self.last_round.phases["step"] = time.perf_counter() - started  # the time compute waited

    def _wait_posted(self) -> None:
        posted, self._posted = self._posted, None
        if posted is not None:
            posted.result()  # a failed post is raised here, in the training loop

    def flush(self) -> None:
        """Delayed updates: wait for our last "working" post (it precedes the next round's "ready" and a final
        "done") and the round in flight (if any), and load its canonical state into the model."""
        self._wait_posted()
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self._record(pending.result())  # a round's SwarmError is raised here, in the training loop
        self.consensus.state.load_into(self.consensus.model)
        self._settled_epoch = self.consensus.epoch

    def adopt_final_state(self) -> None:
        """Delayed updates, the run's end (`stop_at`): wait for the round in flight; a peer with no epoch left to
        compute that still holds a state before `stop_at` (it rejoined holding state stop_at-1, or its gradients
        came too late while the others ran the last round) adopts the final canonical state, so every peer that
        ends the run ends it on the same CID (unless no other peer makes it: `EpochConsensus.adopt_final`).
        Nothing to do without delayed updates (a peer then computes every epoch up to its state's own)."""
        self.flush()
        consensus = self.consensus
        if not self.delayed or self.stop_at is None or self._compute_epoch < self.stop_at:
            return
        if consensus.epoch < self.stop_at and consensus.adopt_final(self.stop_at):
            consensus.state.load_into(consensus.model)
        self._settled_epoch = consensus.epoch

    def _record(self, outcome) -> None:
        stats = RoundStats(
            epoch=outcome.epoch,
            group_size=outcome.group_size,
            seconds=outcome.seconds,
            bytes_sent_estimate=butterfly_bytes_sent(self.wire_bytes, outcome.group_size),
            ok=outcome.entered,
            phases=dict(outcome.phases),
            spans=dict(outcome.spans),
        )
        self.last_round = stats
        self.rounds.append(stats)

    def _set_lr(self, epoch: int) -> None:
        for group in self.param_groups:
            group["lr"] = lr_at(self.consensus.spec, epoch)

    def shutdown(self) -> None:
        try:
            self.flush()
        finally:
            for executor in (self._poster, self._executor):
                if executor is not None:
                    executor.shutdown(wait=True)
            self.consensus.shutdown()
