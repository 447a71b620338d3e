"""SwarmGRPOTrainer on one peer (+ a bootstrap node), in process: epochs drive the LR, the hook and stopping."""

import pytest
import torch

from coordination.attest.seeded_sampling import rollout_seed
from coordination.swarm.peer import peer_label_address, run_peer, start_bootstrap
from coordination.swarm.runspec import run_spec_from_dict

pytestmark = [pytest.mark.network, pytest.mark.slow]


@pytest.mark.parametrize("delayed", [False, True], ids=["sync", "delayed_updates"])
def test_lr_schedule_hook_and_stop_follow_the_run_epochs(tmp_path, monkeypatch, delayed):
    """Also with delayed updates (each round overlaps the next epoch's compute): the same epochs, hook records
    and stop; epoch k's rollouts name the canonical state of k-1 (epoch 0: state 0) as their checkpoint."""
    monkeypatch.setenv("HIVETUNE_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    spec = run_spec_from_dict(
        {
            "grpo": {"per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 8,
                     "lr_scheduler_type": "linear", "learning_rate": 1e-3, "total_epochs": 3},
            "averaging": {"matchmaking_time": 1.0, "delayed_updates": delayed},
        }
    )  # fmt: skip
    records, lrs = [], []

    def on_epoch_end(record):
        assert isinstance(record.model, torch.nn.Module)
        records.append(record)

    from coordination.swarm import swarm_trainer

    original = swarm_trainer.SwarmGRPOTrainer.log

    def spy_log(self, logs, start_time=None):
        if "learning_rate" in logs:
            lrs.append((self.swarm_epoch, self.lr_scheduler.get_last_lr()[0]))
        return original(self, logs, start_time)

    monkeypatch.setattr(swarm_trainer.SwarmGRPOTrainer, "log", spy_log)
    with start_bootstrap(spec, host_maddrs=["/ip4/127.0.0.1/tcp/0"]) as node:
        result = run_peer(
            spec, initial_peers=tuple(node.maddrs), host_maddrs=("/ip4/127.0.0.1/tcp/0",), max_epochs=3,
            on_epoch_end=on_epoch_end, output_dir=str(tmp_path / "peer"), report_to="none", show_status=False,
        )  # fmt: skip
    assert result.epochs == 3 and result.local_steps == 3 and sorted(map(int, result.cids)) == [0, 1, 2, 3]
    assert [r.epoch for r in records] == [0, 1, 2]
    assert [r.outcome.start_cid for r in records] == [result.cids[str(max(e - delayed, 0))] for e in range(3)]
    assert [r.outcome.cid for r in records] == [result.cids[str(e + 1)] for e in range(3)]
    for r in records:
        assert len(r.rollouts) == 8  # the peer's whole epoch assignment, one optimizer step
        assert r.outcome.epoch == r.epoch and r.outcome.entered and r.outcome.group_size == 1
        assert all(x.epoch == r.epoch and isinstance(x.index, int) and x.completion is not None for x in r.rollouts)
        assert all(name.endswith(("lora_A.default.weight", "lora_B.default.weight")) for name in r.adapter_state)
        # seeded sampling: two whole groups on slots 0, 1; seeds are the public rollout seeds of this peer
        address = peer_label_address(result.peer_id)
        assert sorted((s.row["slot"], s.generation) for s in r.seeded) == [(a, g) for a in range(2) for g in range(4)]
        for s in r.seeded:
            assert s.epoch == r.epoch and s.seed == rollout_seed(
                spec.run_id, r.epoch, address, s.row["slot"], s.generation
            )
            assert len(s.logprobs) == len(s.completion_ids) and s.reward is not None
    # linear decay over the spec's 3 epochs: lr(epoch e) = 1e-3 * (1 - e/3), constant within an epoch
    for epoch, lr in lrs:
        assert lr == pytest.approx(1e-3 * (1 - epoch / 3), rel=1e-6)
    assert {e for e, _ in lrs} >= {1, 2}
