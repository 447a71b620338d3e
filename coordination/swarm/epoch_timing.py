"""Where a peer's wall time goes, epoch by epoch: compute (generation, backward) vs the consensus round's phases.

    timer = PhaseTimer()
    with timer("generation"):
        ...
    timer.seconds                                   # {"generation": 1.93}
    row = epoch_time_row(epoch=3, started_at=t0, ended_at=t1, compute=compute_timer.seconds, round_phases={...})
    row["utilization"]                              # (generation + backward) / wall

Compute phases (`SwarmGRPOTrainer`): ``generation`` = TRL's `_generate_and_score_completions` (sampling,
rewards, reference/old log-probs), ``train_step`` = TRL's `training_step` (which includes the generation), so
``backward`` = train_step - generation (loss forward + backward). Round phases (`EpochConsensus.finish_epoch`):
``commit`` (round to wire, store, post "ready"), ``wait_group`` (stragglers), ``allreduce`` (hivemind
matchmaking + butterfly all-reduce), ``save`` (AdamW step, write + store + announce the state), ``resolve``
(waiting for the group's announcements), ``wait_canonical`` (after a failed round), ``adopt`` (fetch the
canonical state); ``cpu`` is the CPU time of the thread that ran the round (with delayed updates: beside the
compute); ``step`` is the whole `ConsensusOptimizer.step` (with delayed updates: the time it waited).
Whatever is in none of them (data loading, clipping, callbacks, logging) is ``other``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

ROUND_PHASES = ("commit", "wait_group", "allreduce", "save", "resolve", "wait_canonical", "adopt")


class PhaseTimer:
    """Seconds spent per named phase, summed over repeats (perf_counter)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.spans: dict[str, tuple[float, float]] = {}  # phase -> (unix start, end) of its last occurrence

    @contextmanager
    def __call__(self, phase: str):
        started, wall_started = time.perf_counter(), time.time()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - started)
            self.spans[phase] = (wall_started, time.time())

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def take(self) -> dict[str, float]:
        """The phases so far, and start again from zero."""
        out, self.seconds, self.spans = self.seconds, {}, {}
        return out


def epoch_time_row(*, epoch: int, started_at: float, ended_at: float, compute: dict, round_phases: dict,
                   round_spans: dict | None = None) -> dict:  # fmt: skip
    """One epoch's time split (seconds; `started_at`/`ended_at` and `round_spans` (phase -> unix start, end) are
    unix times, so other processes can align their own counters, e.g. network bytes, with the epoch)."""
    wall = max(ended_at - started_at, 0.0)
    generation = compute.get("generation", 0.0)
    backward = max(compute.get("train_step", 0.0) - generation, 0.0)
    averaging = round_phases.get("step", sum(round_phases.get(p, 0.0) for p in ROUND_PHASES))
    return {
        "epoch": epoch,
        "started_at": started_at,
        "ended_at": ended_at,
        "wall_s": wall,
        "generation_s": generation,
        "backward_s": backward,
        "averaging_s": averaging,
        "round_phases_s": {p: round_phases[p] for p in ROUND_PHASES if p in round_phases},
        "round_cpu_s": round_phases.get("cpu", 0.0),  # CPU time of the thread that ran the round
        "round_spans": {p: list(span) for p, span in (round_spans or {}).items()},
        "other_s": max(wall - generation - backward - averaging, 0.0),
        "utilization": (generation + backward) / wall if wall > 0 else 0.0,
    }
