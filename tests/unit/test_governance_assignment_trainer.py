"""SwarmGRPOTrainer rewrites each GRPO group to the next slot of the epoch's assignment."""

from types import SimpleNamespace

from coordination.attest.assignment import assigned_indices
from coordination.swarm.swarm_trainer import Assignment
from coordination.swarm.swarm_trainer import SwarmGRPOTrainer as AssignedPromptsTrainer
from trainer.tasks import get_task

PEER = "0x" + "ab" * 20


def fake_trainer(epoch=0):
    assignment = Assignment("bafyrun", PEER, get_task("arithmetic"), task_seed=5)
    return SimpleNamespace(swarm_epoch=epoch, assignment=assignment, _assign_epoch=None, _next_slot=0)


def batch(indices, generations=4):
    return [{"prompt": f"p{i}", "index": i, "seed": 0, "answer": "x"} for i in indices for _ in range(generations)]


def test_groups_follow_the_assignment_in_slot_order_and_restart_each_epoch():
    t = fake_trainer(epoch=2)
    first = AssignedPromptsTrainer.assigned_inputs(t, batch([10, 11]))
    second = AssignedPromptsTrainer.assigned_inputs(t, batch([12]))
    expected = assigned_indices("bafyrun", 2, PEER, 3)
    assert [r["index"] for r in first] == [expected[0]] * 4 + [expected[1]] * 4
    assert [r["index"] for r in second] == [expected[2]] * 4
    assert all(r["seed"] == 5 for r in first + second)

    t.swarm_epoch = 3
    third = AssignedPromptsTrainer.assigned_inputs(t, batch([13]))
    assert [r["index"] for r in third] == [assigned_indices("bafyrun", 3, PEER, 1)[0]] * 4


def test_rewritten_rows_are_the_tasks_own_prompts():
    t = fake_trainer()
    task = t.assignment.task
    for row in AssignedPromptsTrainer.assigned_inputs(t, batch([1, 2, 3], generations=2)):
        sample = task.sample(5, row["index"])
        assert row["prompt"] == task.prompt(sample) and row["answer"] == sample.answer
