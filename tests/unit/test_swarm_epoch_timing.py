"""Per-epoch time split of a swarm peer (coordination.swarm.epoch_timing) and where the peer records it."""

import time
from types import SimpleNamespace

import pytest

from coordination.swarm.consensus_optimizer import RoundStats
from coordination.swarm.epoch_timing import PhaseTimer, epoch_time_row
from coordination.swarm.swarm_trainer import SwarmGRPOTrainer


def test_phase_timer_sums_repeats_and_take_starts_again():
    timer = PhaseTimer()
    for _ in range(2):
        with timer("wait"):
            time.sleep(0.02)
    timer.add("wait", 1.0)
    with pytest.raises(RuntimeError), timer("failed"):  # a phase that raises is still counted
        raise RuntimeError
    start, end = timer.spans["wait"]  # unix times of the last occurrence
    assert 0.015 <= end - start < 0.5 and abs(end - time.time()) < 1.0
    taken = timer.take()
    assert 1.04 <= taken["wait"] < 1.5 and "failed" in taken
    assert timer.seconds == {} and timer.spans == {}


def test_epoch_row_splits_the_wall_time():
    compute = {"generation": 3.0, "train_step": 5.0}  # TRL's training_step includes the generation
    phases = {"commit": 0.1, "wait_group": 0.4, "allreduce": 1.0, "save": 0.2, "resolve": 0.3, "step": 2.1}
    row = epoch_time_row(epoch=2, started_at=100.0, ended_at=108.0, compute=compute, round_phases=phases)
    assert row["wall_s"] == 8.0
    assert row["generation_s"] == 3.0 and row["backward_s"] == 2.0
    assert row["averaging_s"] == 2.1  # the whole optimizer step, not only the named phases
    assert row["other_s"] == pytest.approx(8.0 - 3.0 - 2.0 - 2.1)
    assert row["utilization"] == pytest.approx(5.0 / 8.0)
    assert set(row["round_phases_s"]) == {"commit", "wait_group", "allreduce", "save", "resolve"}


def test_epoch_row_without_step_sums_the_phases_and_never_goes_negative():
    row = epoch_time_row(epoch=0, started_at=10.0, ended_at=11.0, compute={"generation": 0.5},
                         round_phases={"wait_group": 0.7, "allreduce": 0.2})  # fmt: skip
    assert row["backward_s"] == 0.0 and row["averaging_s"] == pytest.approx(0.9) and row["other_s"] == 0.0
    assert row["utilization"] == 0.5


def test_the_trainer_records_one_row_per_epoch_from_its_timers_and_the_last_round():
    phases = {"wait_group": 0.5, "allreduce": 0.25, "step": 1.0}
    last = RoundStats(epoch=4, group_size=2, seconds=0.9, bytes_sent_estimate=0, ok=True, phases=phases)
    fake = SimpleNamespace(swarm_optimizer=SimpleNamespace(last_round=last), _epoch_started_at=50.0,
                           compute_timer=PhaseTimer(), epoch_times=[])  # fmt: skip
    fake.compute_timer.add("generation", 2.0)
    fake.compute_timer.add("train_step", 3.0)
    SwarmGRPOTrainer._record_epoch_time(fake, 4, 54.0)
    (row,) = fake.epoch_times
    assert (row["epoch"], row["wall_s"], row["generation_s"], row["backward_s"]) == (4, 4.0, 2.0, 1.0)
    assert row["round_phases_s"] == {"wait_group": 0.5, "allreduce": 0.25} and row["utilization"] == 0.75
    assert fake.compute_timer.seconds == {}  # the next epoch starts from zero
