"""The collaborative optimizer: hivemind.Optimizer over the LoRA parameters only.

One hivemind *epoch* = one global optimizer step = `target_global_batch` completions summed over
all peers. Each local `step()` adds this peer's (already clipped) gradients to an accumulator;
when the swarm reaches the target, peers all-reduce the sample-weighted mean gradient (fp16 on
the wire by default), every peer applies the same AdamW update, and the LR scheduler advances
once. Peers that fall behind (or join late) download parameters + optimizer state from peers.

    opt = build_collaborative_optimizer(model=peft_model, dht=dht, spec=spec, batch_size_per_step=16)
    loss.backward(); clip_grad_norm_(lora_parameters(peft_model), 1.0); opt.step(); opt.zero_grad()
    opt.local_epoch, opt.last_round      # RoundStats(epoch, group_size, seconds, bytes_sent_estimate, ok)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial

import hivemind
import torch
from hivemind.compression import Float16Compression, NoCompression, Uniform8BitQuantization

from coordination.swarm.robust_averaging import RobustGradientAverager, RobustStateAverager
from coordination.swarm.runspec import RunSpec

logger = logging.getLogger(__name__)

WIRE_BYTES_PER_ELEMENT = {"fp16": 2, "8bit": 1, "none": 4}


def lora_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The trainable (LoRA) parameters of a PEFT model, in module order; the frozen base is never averaged."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters: wrap it with peft.get_peft_model(model, lora_config)")
    return params


def grad_compression(name: str):
    """hivemind compression for a spec's `averaging.compression` (fp16 | 8bit | none)."""
    return {"fp16": Float16Compression(), "8bit": Uniform8BitQuantization(), "none": NoCompression()}[name]


def adapter_wire_bytes(params, compression: str) -> int:
    """S: bytes of one full gradient vector on the wire (all LoRA params) under `compression`."""
    return sum(p.numel() for p in params) * WIRE_BYTES_PER_ELEMENT[compression]


def butterfly_bytes_sent(wire_bytes: int, group_size: int) -> int:
    """Bytes one peer sends in a butterfly all-reduce with equal shares: 2(n-1)/n * S."""
    return 0 if group_size <= 1 else int(2 * (group_size - 1) / group_size * wire_bytes)


@dataclass
class RoundStats:
    epoch: int
    group_size: int  # 1 = no other peer joined; local gradients used
    seconds: float  # waiting for the group + all-reduce, after the local batch was ready
    bytes_sent_estimate: int  # 2(n-1)/n * S; measure real traffic with bench/swarm_comm.py
    ok: bool


class SwarmOptimizer(hivemind.Optimizer):
    """hivemind.Optimizer that records the last gradient-averaging round (for the status line and logs)."""

    def __init__(self, *, wire_bytes: int = 0, **kwargs):
        self.wire_bytes, self.last_round, self.rounds = wire_bytes, None, []
        self.epoch_times: list[float] = []  # monotonic time of every epoch transition seen here
        super().__init__(**kwargs)

    def _make_state_averager(self, **kwargs):
        """hivemind's state averager (same arguments as hivemind.Optimizer uses), with per-sender checks:
        non-finite or far-off parameter parts from a peer are ignored (RobustStateAverager)."""
        return RobustStateAverager(
            dht=self.dht,
            prefix=f"{self.run_id}_state_averager",
            min_matchmaking_time=self.matchmaking_time,
            allreduce_timeout=self.allreduce_timeout,
            shutdown_timeout=self.shutdown_timeout,
            offload_optimizer=self.offload_optimizer,
            custom_gradients=self.offload_optimizer,
            status_loglevel=self.status_loglevel,
            next_chunk_timeout=self.next_chunk_timeout,
            client_mode=self.client_mode,
            auxiliary=self.auxiliary,
            start=True,
            **kwargs,
        )

    def _update_global_epoch(self, grad_scaler) -> None:
        super()._update_global_epoch(grad_scaler)
        self.epoch_times.append(time.monotonic())

    @property
    def global_samples_per_second(self) -> float:
        """Swarm throughput: target batch / mean epoch duration (last 5); before two epochs, a local estimate."""
        times = self.epoch_times[-6:]
        if len(times) >= 2:
            return self.tracker.target_batch_size * (len(times) - 1) / max(times[-1] - times[0], 1e-9)
        local = self.tracker.performance_ema.samples_per_second
        return float(local) * max(1, self.tracker.global_progress.num_peers)

    def _average_gradients_and_load_into_optimizer(self, maybe_step_control):
        start, group_size = time.perf_counter(), 1
        super()._average_gradients_and_load_into_optimizer(maybe_step_control)
        ok = maybe_step_control is not None and maybe_step_control.done() and maybe_step_control.exception() is None
        if ok:
            group_size = len(maybe_step_control.result())
        stats = RoundStats(
            epoch=self.local_epoch,
            group_size=group_size,
            seconds=time.perf_counter() - start,
            bytes_sent_estimate=butterfly_bytes_sent(self.wire_bytes, group_size),
            ok=ok,
        )
        self.last_round = stats
        self.rounds.append(stats)

    def finish_epoch(self, timeout: float) -> bool:
        """Without adding samples: wait until the swarm reaches the target batch, then average and step.

        Use after the last local step (or in tests) instead of feeding dummy batches. Returns whether
        the epoch advanced within `timeout` seconds.
        """
        epoch, deadline = self.local_epoch, time.monotonic() + timeout
        while not self._swarm_reached_target():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        self._update_global_epoch(grad_scaler=None)
        return self.local_epoch > epoch

    def _swarm_reached_target(self) -> bool:
        progress = self.tracker.global_progress
        return (
            self.tracker.global_epoch > self.local_epoch
            or progress.samples_accumulated >= self.tracker.target_batch_size
        )

    @property
    def rejected_parts(self) -> int:
        """Gradient parts from other peers this peer rejected (non-finite or over-norm) so far."""
        averager = getattr(self, "grad_averager", None)
        return 0 if averager is None else averager.rejections.count


def _adamw_factory(lr: float):
    return partial(torch.optim.AdamW, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)


def _scheduler_factory(spec: RunSpec, total_epochs: int | None):
    from transformers import get_scheduler

    if spec.grpo.lr_scheduler_type == "constant" and not spec.grpo.warmup_epochs:
        return None
    if total_epochs is None and spec.grpo.lr_scheduler_type != "constant_with_warmup":
        raise ValueError(f"lr_scheduler_type={spec.grpo.lr_scheduler_type!r} needs max_epochs (the schedule length)")
    return partial(
        get_scheduler,
        spec.grpo.lr_scheduler_type,
        num_warmup_steps=spec.grpo.warmup_epochs,
        num_training_steps=total_epochs,
    )


def build_collaborative_optimizer(
    *,
    model: torch.nn.Module,
    dht,
    spec: RunSpec,
    batch_size_per_step: int,
    total_epochs: int | None = None,
    verbose: bool = False,
    **overrides,
) -> SwarmOptimizer:
    """A SwarmOptimizer over `model`'s LoRA parameters, configured from the run spec.

    :param batch_size_per_step: completions behind one local `step()` (all local processes together).
    :param total_epochs: length of the LR schedule in hivemind epochs (needed by decaying schedules).
    :param overrides: any hivemind.Optimizer keyword, e.g. `load_state_timeout=30`.
    Tuning: matchmaking_time 3-5 s locally, 10-15 s over the internet; averaging_timeout a few times the
    expected all-reduce time (2(n-1)/n * S / bandwidth).
    """
    avg = spec.averaging
    params = lora_parameters(model)
    kwargs = dict(
        dht=dht,
        run_id=spec.run_id,
        params=params,
        optimizer=_adamw_factory(spec.grpo.learning_rate),
        scheduler=_scheduler_factory(spec, total_epochs),
        target_batch_size=avg.target_global_batch,
        batch_size_per_step=batch_size_per_step,
        matchmaking_time=avg.matchmaking_time,
        averaging_timeout=avg.averaging_timeout,
        use_local_updates=avg.strategy == "parameters",
        average_state_every=avg.average_state_every,
        grad_compression=grad_compression(avg.compression),
        state_averaging_compression=grad_compression(avg.compression),
        grad_averager_factory=partial(
            RobustGradientAverager,
            max_grad_norm=spec.grpo.max_grad_norm or None,
            reject_norm_factor=avg.reject_norm_factor,
        ),
        load_state_timeout=max(30.0, avg.averaging_timeout),
        verbose=verbose,
        wire_bytes=adapter_wire_bytes(params, avg.compression),
    )
    if avg.strategy == "parameters":
        kwargs.pop("grad_averager_factory")  # local updates: no gradient averager at all
    kwargs.update(overrides)
    return SwarmOptimizer(**kwargs)
