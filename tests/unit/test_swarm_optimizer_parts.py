"""Pure parts of the consensus optimizer: which parameters are averaged, wire sizes, the LR view."""

import pytest
import torch

from coordination.swarm.consensus_optimizer import adapter_wire_bytes, butterfly_bytes_sent, lora_parameters
from coordination.swarm.swarm_trainer import EpochLRView


def peft_model():
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    return get_peft_model(Qwen2ForCausalLM(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))


def test_only_lora_parameters_are_averaged():
    model = peft_model()
    names = {id(p): n for n, p in model.named_parameters()}
    params = lora_parameters(model)
    assert params and all("lora_" in names[id(p)] for p in params)
    # 2 layers x (q, v) x (A: r x 32, B: out x r); q out 32, v out 16 (2 kv heads x head dim 8)
    assert sum(p.numel() for p in params) == 2 * ((4 * 32 + 32 * 4) + (4 * 32 + 16 * 4))


def test_plain_model_is_rejected_with_a_fix_it_message():
    with pytest.raises(ValueError, match="get_peft_model"):
        lora_parameters(torch.nn.Linear(2, 2).requires_grad_(False))


def test_wire_sizes_and_butterfly_volume():
    params = [torch.zeros(10, 10), torch.zeros(50)]
    assert adapter_wire_bytes(params, "fp16") == 300 and adapter_wire_bytes(params, "none") == 600
    assert butterfly_bytes_sent(1000, 1) == 0
    assert butterfly_bytes_sent(1000, 2) == 1000 and butterfly_bytes_sent(1000, 4) == 1500


def test_lr_view_reports_the_optimizer_lr_and_never_steps_it():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    view = EpochLRView(opt)
    view.step()
    view.step()
    assert view.get_last_lr() == [0.5]
    opt.param_groups[0]["lr"] = 0.25  # what the consensus optimizer does at each epoch
    assert view.get_last_lr() == [0.25]


@pytest.mark.parametrize("swarm_epoch, trains", [(10, False), (12, False), (9, True)])
def test_a_peer_that_joins_at_or_after_max_epochs_stops_without_a_local_step(monkeypatch, swarm_epoch, trains):
    """A restarted peer whose swarm already reached max_epochs adopts the final state when its optimizer joins,
    then must not take a step: that step's round would wait forever for peers that are done (CI hung on it)."""
    from types import SimpleNamespace

    from trl import GRPOTrainer

    from coordination.swarm.swarm_trainer import SwarmGRPOTrainer

    joined = []
    monkeypatch.setattr(GRPOTrainer, "train", lambda self, *a, **k: "trained")
    t = SwarmGRPOTrainer.__new__(SwarmGRPOTrainer)
    t.max_epochs, t.optimizer, t.model, t.state = 10, None, "model", SimpleNamespace(global_step=0)
    t.accelerator = SimpleNamespace(is_main_process=True, num_processes=1)
    joined_opt = SimpleNamespace(local_epoch=swarm_epoch, settled_epoch=swarm_epoch)
    joined_opt.adopt_final_state = lambda: joined.append("adopt_final_state")
    t.optimizer_factory = lambda model: joined.append(model) or joined_opt
    out = t.train()
    assert joined == ["model", "adopt_final_state"]  # joined the swarm (fetching its head state) before deciding
    assert (out == "trained") is trains
    if not trains:
        assert out.global_step == 0


class FakeConsensus:
    """EpochConsensus as ConsensusOptimizer sees it: each round adds the gradient to the state (epoch += 1), in
    whatever thread runs it, once the test hands it a permit; `swarm_at`: where a rejoining peer finds the swarm."""

    def __init__(self, *, epoch=0, swarm_at=None):
        import threading
        from types import SimpleNamespace

        from coordination.swarm.runspec import run_spec_from_dict

        self.model = torch.nn.Linear(2, 1, bias=False)
        self.spec = run_spec_from_dict({"averaging": {"delayed_updates": True}})
        self.dht, self.delayed, self.load_model = None, True, True
        self.state = SimpleNamespace(epoch=epoch, w=torch.full((1, 2), float(epoch)))
        self.state.load_into = lambda model: model.weight.data.copy_(self.state.w)
        self.state.load_into(self.model)
        self.swarm_at, self.log, self.permits = swarm_at, [], threading.Semaphore(0)

    @property
    def epoch(self):
        return self.state.epoch

    def first_compute_epoch(self):
        return self.epoch + 1 if self.epoch > 0 else 0

    def begin_epoch(self, epoch=None):
        self.log.append(("working", epoch))

    def catch_up(self, epoch):
        self.log.append(("catch_up", epoch))
        self.state.epoch, self.state.w = epoch, torch.full((1, 2), float(epoch))

    def adopt_final(self, epoch):
        self.catch_up(epoch)
        return True

    def load_rollout_state(self, epoch):
        self.log.append(("rollout_state", epoch))
        self.model.weight.data.fill_(float(epoch - 1))

    def finish_epoch(self, grads, *, weight):
        import threading
        from types import SimpleNamespace

        epoch = self.epoch
        if self.swarm_at is not None and self.swarm_at > epoch:  # the swarm did this round without us
            self.state.epoch, self.state.w = self.swarm_at, torch.full((1, 2), float(self.swarm_at))
            return SimpleNamespace(epoch=epoch, group_size=2, seconds=0.0, entered=False, phases={}, spans={})
        assert self.permits.acquire(timeout=30), f"round {epoch} never got its permit"
        self.log.append(("round", epoch, threading.current_thread().name))
        self.state.w = self.state.w + grads["weight"]
        self.state.epoch = epoch + 1
        return SimpleNamespace(epoch=epoch, group_size=1, seconds=0.0, entered=True, phases={}, spans={})

    def shutdown(self):
        pass


def _compute(opt):
    """One epoch's compute: its gradient is the weight it computed on + 1 (so staleness shows in the result)."""
    weight = opt.consensus.model.weight
    opt.consensus.model.weight.grad = weight.detach().clone() + 1.0
    opt.step()


def test_delayed_updates_overlap_each_round_with_the_next_epoch_on_the_state_before_it():
    from coordination.swarm.consensus_optimizer import ConsensusOptimizer

    c = FakeConsensus()
    opt = ConsensusOptimizer(c, weight=8, stop_at=4)
    assert c.load_model is False and (opt.local_epoch, opt.settled_epoch) == (0, 0)
    computed_on, rounds = [], lambda: [r[1] for r in c.log if r[0] == "round"]  # noqa: E731
    for k in range(4):
        computed_on.append(float(c.model.weight.detach()[0, 0]))
        if k:  # round k-1 may finish now (the last step also drains round 3)
            c.permits.release(2 if k == 3 else 1)
        _compute(opt)
        if k < 3:  # step k returned while round k is still blocked: it runs while epoch k+1 computes
            assert rounds() == list(range(k)) and opt.local_epoch == k + 1 and opt.settled_epoch == k
    assert rounds() == [0, 1, 2, 3] and all(r[2].startswith("hivetune-round") for r in c.log if r[0] == "round")
    assert [x[1] for x in c.log if x[0] == "working"] == [1, 2, 3, 4]
    # epochs 0 and 1 compute on state 0, epoch k on state k-1: w1 = 0+1, w2 = 1+(0+1), w3 = 2+(1+1), w4 = 4+(2+1)
    assert computed_on == [0.0, 0.0, 1.0, 2.0]
    assert (opt.local_epoch, opt.settled_epoch, c.epoch) == (4, 4, 4)  # the last round was drained
    assert float(c.model.weight.detach()[0, 0]) == 7.0 == float(c.state.w[0, 0])
    assert [r.epoch for r in opt.rounds] == [0, 1, 2, 3]


def test_a_rejoining_peer_adopts_the_next_state_before_its_round_and_late_gradients_are_dropped():
    from coordination.swarm.consensus_optimizer import ConsensusOptimizer

    c = FakeConsensus(epoch=5)  # restarted holding state 5: it computes epoch 6 on it
    opt = ConsensusOptimizer(c, weight=8)
    assert (opt.local_epoch, opt.settled_epoch) == (6, 5)
    c.permits.release()
    _compute(opt)
    assert ("catch_up", 6) in c.log  # state 6 adopted before its round of epoch 6
    opt.flush()
    assert [r[1] for r in c.log if r[0] == "round"] == [6] and c.epoch == 7 and opt.settled_epoch == 7
    late = FakeConsensus(epoch=3)
    opt = ConsensusOptimizer(late, weight=8)
    late.catch_up = lambda epoch: setattr(late.state, "epoch", 9)  # by the time it caught up, the swarm was at 9
    _compute(opt)
    assert (opt.local_epoch, opt.settled_epoch) == (10, 9) and not [r for r in late.log if r[0] == "round"]


def test_a_peer_with_no_epoch_left_to_compute_ends_on_the_final_state():
    """Delayed updates, the run's end: a peer that rejoins holding state max_epochs-1 (the others compute the last
    epoch, on state max_epochs-2), or whose last gradients came too late, adopts the others' final state instead of
    stopping one state short (seen in CI: the restarted peer of the fault test ended on state 9 of 10)."""
    from coordination.swarm.consensus_optimizer import ConsensusOptimizer

    c = FakeConsensus(epoch=9)
    opt = ConsensusOptimizer(c, weight=8, stop_at=10)
    assert (opt.local_epoch, opt.settled_epoch) == (10, 9)
    opt.adopt_final_state()
    assert ("catch_up", 10) in c.log and (c.epoch, opt.settled_epoch) == (10, 10)
    assert c.model.weight.tolist() == [[10.0, 10.0]]  # the model holds the final state, not state 9
    opt.adopt_final_state()  # idempotent: already there
    assert [e for e in c.log if e[0] == "catch_up"] == [("catch_up", 10)]

    late = FakeConsensus(epoch=7)  # rejoined holding state 7: computes epoch 8 on it ...
    opt = ConsensusOptimizer(late, weight=8, stop_at=10)
    calls = []

    def catch_up(epoch):  # ... but by then the swarm is at state 9: its epoch-8 gradients are too late
        calls.append(epoch)
        FakeConsensus.catch_up(late, 9 if len(calls) == 1 else epoch)

    late.catch_up = catch_up
    _compute(opt)
    assert calls == [8, 10]  # then nothing left to compute: it waits for the others' last round and adopts it
    assert (late.epoch, opt.settled_epoch, opt.local_epoch) == (10, 10, 10)
    assert not [r for r in late.log if r[0] == "round"] and late.model.weight.tolist() == [[10.0, 10.0]]

    sync = FakeConsensus(epoch=9)
    sync.delayed = False
    opt = ConsensusOptimizer(sync, weight=8, stop_at=10)
    opt.adopt_final_state()  # without delayed updates a peer holding state 9 computes epoch 9 itself
    assert sync.epoch == 9 and not [e for e in sync.log if e[0] == "catch_up"]


def test_a_delayed_peer_that_computes_its_own_epoch_does_it_on_the_state_before():
    """A peer at state 5 that computes epoch 5 (nobody computes 6 yet, e.g. the whole swarm restarted): its model
    holds state 4 for that epoch (epoch k's rollouts come from state k-1), then its round 5 applies the gradient
    to state 5 and epoch 6 computes on state 5."""
    from coordination.swarm.consensus_optimizer import ConsensusOptimizer

    c = FakeConsensus(epoch=5)
    c.first_compute_epoch = lambda: 5
    opt = ConsensusOptimizer(c, weight=8)
    assert c.log == [("rollout_state", 5)] and c.model.weight.tolist() == [[4.0, 4.0]]
    assert (opt.local_epoch, opt.settled_epoch) == (5, 5)
    c.permits.release()
    _compute(opt)  # gradient = 4 + 1 (computed on state 4), applied to state 5 by round 5
    assert c.model.weight.tolist() == [[5.0, 5.0]] and opt.local_epoch == 6  # epoch 6 computes on state 5
    opt.flush()
    assert c.epoch == 6 and c.model.weight.tolist() == [[10.0, 10.0]]
    assert not [e for e in c.log if e[0] == "catch_up"]


def test_the_working_post_runs_beside_the_compute_and_lands_before_the_next_round():
    """Delayed updates: step() does not wait for its "working on epoch k+1" post (a DHT store), but that post
    still lands before the round of epoch k+1 starts (its "ready" must not be overwritten by a late "working")
    and before flush() returns (the peer's final "done" comes after it)."""
    import threading

    from coordination.swarm.consensus_optimizer import ConsensusOptimizer

    c, gate = FakeConsensus(), threading.Event()

    def slow_post(epoch=None):
        assert gate.wait(timeout=30), "the post's gate was never opened"
        c.log.append(("working", epoch, threading.current_thread().name))

    c.begin_epoch = slow_post
    opt = ConsensusOptimizer(c, weight=8, stop_at=3)
    c.permits.release(3)  # every round may run as soon as it is submitted
    _compute(opt)  # epoch 0: round 0 in the background, "working on 1" blocked at its gate
    assert not [e for e in c.log if e[0] == "working"] and opt.local_epoch == 1  # step returned without it
    threading.Timer(0.2, gate.set).start()
    _compute(opt)  # epoch 1: waits for the post before round 1 is submitted
    _compute(opt)  # epoch 2, the last: drains round 2 and the post of "working on 3"
    kinds = [e[:2] for e in c.log]
    assert kinds.index(("working", 1)) < kinds.index(("round", 1)) and kinds.index(("working", 2)) < kinds.index(
        ("round", 2))  # fmt: skip
    assert [e[1] for e in c.log if e[0] == "working"] == [1, 2, 3]
    assert all(e[2].startswith("hivetune-post") for e in c.log if e[0] == "working")
    assert opt._posted is None and c.epoch == 3
    opt.shutdown()
