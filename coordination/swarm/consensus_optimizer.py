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

import time
from dataclasses import dataclass, field

import torch

from coordination.swarm.training_state import lora_named_parameters, lr_at

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
    """torch Optimizer facade over an EpochConsensus (see module docstring)."""

    def __init__(self, consensus, *, weight: float):
        self.consensus, self.weight = consensus, float(weight)
        self.named = lora_named_parameters(consensus.model)
        super().__init__([p for _, p in self.named], {"lr": lr_at(consensus.spec, consensus.epoch)})
        self.wire_bytes = adapter_wire_bytes([p for _, p in self.named], consensus.spec.averaging.compression)
        self.rounds: list[RoundStats] = []
        self.last_round: RoundStats | None = None
        self.dht = consensus.dht

    @property
    def local_epoch(self) -> int:
        return self.consensus.epoch

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
            n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().cpu() for n, p in self.named
        }
        outcome = self.consensus.finish_epoch(grads, weight=self.weight)
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
        for group in self.param_groups:
            group["lr"] = lr_at(self.consensus.spec, self.consensus.epoch)
        self.consensus.begin_epoch()
        stats.phases["step"] = time.perf_counter() - started
        return None

    def shutdown(self) -> None:
        self.consensus.shutdown()
