"""EpochConsensus's decisions against lying announcers, with an in-memory epoch board (no network).

- a lone attacker announcing a "finished" epoch never makes honest peers skip their round;
- a majority of the expected members that finished without us does (the straggler case);
- after our round: ties go to our own result, a strictly larger agreeing group wins, no majority -> None.
"""

from types import SimpleNamespace

from coordination.errors import SwarmError
from coordination.swarm.consensus import EpochConsensus
from coordination.swarm.epoch_board import choose_canonical

A, B, C, X = (f"[owner:{n}]".encode() for n in "abcx")


class FakeBoard:
    def __init__(self, owner, work=None, results=None, presence=None):
        self.owner, self._work, self._results, self._presence = owner, work or {}, results or {}, presence or {}

    def work(self, epoch):
        return self._work.get(epoch, {})

    def settled(self, epoch):  # as EpochBoard.settled / active_since, over the in-memory records
        later = {o for o, p in self._presence.items() if p["epoch"] >= epoch or p["state"] == "done"}
        return set(self.work(epoch)) | later

    def active_since(self, t):
        return {o for o, p in self._presence.items() if p["time"] >= t and p["state"] != "done"}

    def results(self, epoch):
        return self._results.get(epoch, {})

    def presence(self):
        return dict(self._presence)

    def canonical(self, epoch):
        return choose_canonical(epoch, self.results(epoch))

    def wait_canonical(self, epoch, *, members, timeout):
        return self.canonical(epoch)


def consensus(board, last_group=(A, B, C)):
    c = EpochConsensus.__new__(EpochConsensus)
    c.board, c.last_group, c.straggler_timeout = board, tuple(last_group), 0.0
    c.spec = SimpleNamespace(averaging=SimpleNamespace(min_group=1))
    return c


def res(cid, group):
    return {"cid": cid, "group": list(group), "peer_id": "p"}


READY = {"state": "ready"}


def test_a_lone_attacker_announcing_the_next_epoch_does_not_make_us_skip_the_round():
    board = FakeBoard(A, work={3: {A: READY, B: READY, C: READY}}, results={4: {X: res("evil", [X])}})
    done, ready = consensus(board)._wait_for_group(3)
    assert done is None and ready == {A, B, C}


def test_a_majority_that_finished_without_us_is_followed():
    board = FakeBoard(C, work={3: {C: READY}}, results={4: {A: res("good", [A, B]), B: res("good", [A, B])}})
    done, _ = consensus(board)._wait_for_group(3)
    assert done.cid == "good"


def test_after_our_round_ties_go_to_our_result_and_a_larger_group_wins():
    tie = FakeBoard(A, results={4: {A: res("ours", [A]), X: res("aaa-evil", [X])}})  # "aaa" sorts first
    assert consensus(tie, last_group=(A,))._resolve_after_round(3, ("ours", [A])).cid == "ours"
    bigger = FakeBoard(C, results={4: {A: res("good", [A, B]), B: res("good", [A, B]), C: res("solo", [C])}})
    assert consensus(bigger)._resolve_after_round(3, ("solo", [C])).cid == "good"


def test_no_majority_for_our_group_gives_none_so_the_round_is_retried():
    split = FakeBoard(A, results={4: {A: res("a", [A, B, C]), B: res("b", [A, B, C]), C: res("c", [A, B, C])}})
    assert consensus(split)._resolve_after_round(3, ("a", [A, B, C])) is None


class RecordingAverager:
    """Fails every round and records the min group size each attempt asked for."""

    def __init__(self):
        self.min_groups = []

    def set_min_group_size(self, n):
        self.min_groups.append(n)


def failing_consensus(min_group):

    c = consensus(FakeBoard(A, work={3: {A: READY, B: READY, C: READY}}))
    c.spec = SimpleNamespace(
        averaging=SimpleNamespace(min_group=min_group, compression="none", matchmaking_time=0.0, delayed_updates=False)
    )
    c.averager, c.names, c.state = RecordingAverager(), ["w"], SimpleNamespace(epoch=3)
    c.canonical_cids, c.peer_id = {}, "pa"
    c.store_contribution = lambda *a, **k: "contribution-cid"
    c.board.post_work = lambda *a, **k: True
    c._round = lambda *a, **k: None  # every round fails
    c._wait_any_canonical = lambda *a, **k: None
    return c


def test_a_retried_round_never_goes_below_the_runs_min_group():
    import pytest
    import torch

    from coordination.errors import SwarmError

    c = failing_consensus(min_group=2)
    with pytest.raises(SwarmError, match="no averaging round completed"):
        c.finish_epoch({"w": torch.zeros(4)}, weight=1.0)
    assert c.averager.min_groups[0] == 3  # the first attempt insists on every ready peer
    assert c.averager.min_groups[1:] and set(c.averager.min_groups[1:]) == {2}  # retries: min_group, never 1


def test_a_retry_needs_a_majority_of_the_ready_peers_even_when_the_run_allows_groups_of_one():
    """Seen in the demo (min_group 1): a reducer failed, both peers retried as groups of one, and the run split
    into two chains that disagreed on every later epoch. A retry now needs a strict majority of the ready peers,
    so at most one group of a split can form and the others adopt its state."""
    import pytest
    import torch

    from coordination.errors import SwarmError
    from coordination.swarm.consensus import round_min_group

    c = failing_consensus(min_group=1)
    with pytest.raises(SwarmError, match="no averaging round completed"):
        c.finish_epoch({"w": torch.zeros(4)}, weight=1.0)
    assert c.averager.min_groups[0] == 3 and set(c.averager.min_groups[1:]) == {2}  # 3 ready: 2 of them, never 1
    # (ready peers, min_group) -> first attempt, retries: two disjoint groups can never both reach the retry size
    for ready, min_group, first, retry in [(1, 1, 1, 1), (2, 1, 2, 2), (3, 1, 3, 2), (4, 1, 4, 3), (5, 1, 5, 3),
                                           (4, 4, 4, 4), (0, 2, 2, 2)]:  # fmt: skip
        assert (round_min_group(ready, min_group, 0), round_min_group(ready, min_group, 1)) == (first, retry)
        assert ready == 0 or 2 * retry > ready


def test_peers_that_stopped_at_this_epoch_are_not_waited_for():
    board = FakeBoard(A, work={3: {A: READY, B: {"state": "done"}}})
    done, ready = consensus(board, last_group=(A, B))._wait_for_group(3)
    assert done is None and ready == {A}  # B stopped (max_epochs): no straggler wait for it


def test_linger_returns_once_every_peer_of_the_last_round_reached_the_epoch():
    posted = []
    board = FakeBoard(A, work={5: {B: {"state": "working"}}})
    board.post_work = lambda epoch, **status: posted.append((epoch, status["state"]))
    c = consensus(board, last_group=(A, B, C))
    c.state, c.peer_id, c.straggler_timeout = SimpleNamespace(epoch=5), "pa", 0.0
    assert c.linger(timeout=0.0) == {C}  # C never reached epoch 5
    board._work[5][C] = {"state": "working"}
    assert c.linger(timeout=5.0) == set()
    assert posted == [(5, "done"), (5, "done")]


def test_linger_waits_for_a_crashed_peer_seen_recently_until_its_restart_reaches_the_epoch():
    """B crashed at epoch 2 (not in our last round, not at epoch 4): it may be restarting, so we serve on; the
    restarted B (same owner key) posting at epoch 5 releases us. Peers seen long ago, or done, are not waited for."""
    import threading
    import time

    from hivemind.utils import get_dht_time

    now = get_dht_time()
    presence = {
        B: {"epoch": 2, "state": "ready", "time": now - 5},
        X: {"epoch": 1, "state": "working", "time": now - 1e4},
        C: {"epoch": 3, "state": "done", "time": now},
    }
    board = FakeBoard(A, presence=presence)
    board.post_work = lambda epoch, **status: True
    c = consensus(board, last_group=(A,))
    c.state, c.peer_id = SimpleNamespace(epoch=5), "pa"
    assert c.linger(timeout=0.0, seen_within=60.0) == {B}  # not X (seen long ago), not C (done)
    restarted = {"epoch": 5, "state": "working", "time": now}
    threading.Timer(1.0, lambda: presence.update({B: restarted})).start()
    started = time.monotonic()
    assert c.linger(timeout=30.0) == set()
    assert 0.9 < time.monotonic() - started < 30.0  # it waited for B, and stopped as soon as B reached epoch 5


def test_linger_does_not_wait_for_peers_that_stopped_before_us():
    """A newcomer that trains on alone after the run's peers finished (the demo's) must not serve on for them:
    they posted "done" at the previous epoch and need nothing of ours."""
    from hivemind.utils import get_dht_time

    now = get_dht_time()
    presence = {B: {"epoch": 12, "state": "done", "time": now - 3}, C: {"epoch": 12, "state": "done", "time": now}}
    board = FakeBoard(A, work={12: {B: {"state": "done"}, C: {"state": "done"}}}, presence=presence)
    board.post_work = lambda epoch, **status: True
    c = consensus(board, last_group=(A,))
    c.state, c.peer_id = SimpleNamespace(epoch=13), "pa"
    assert c.linger(timeout=30.0, seen_within=60.0) == set()


def delayed_at(epoch, board):
    c = consensus(board)
    c.delayed, c._first_compute, c.state = True, None, SimpleNamespace(epoch=epoch)
    return c


WORKING, DONE = {"state": "working"}, {"state": "done"}


def test_a_delayed_peer_at_h_computes_h_unless_every_other_peer_is_done():
    """Delayed updates: epoch h's rollouts come from state h-1. A peer (re)joining at state h computes h and takes
    part in round h, so a whole swarm restarting from its journals goes on, even where a peer that crashed mid-round
    had posted "working on h+1" (CI would otherwise wait on a round h nobody runs); only when every other peer is
    done (a newcomer after the run) does it go to h+1."""
    stale = {"epoch": 6, "state": "working", "time": 0.0}  # a crashed peer's last status: it may be restarting
    assert delayed_at(5, FakeBoard(A)).first_compute_epoch() == 5  # nobody else known yet: a restart of all
    assert delayed_at(5, FakeBoard(A, presence={B: stale, C: stale})).first_compute_epoch() == 5
    crashed_mid_round = FakeBoard(A, work={6: {A: WORKING, B: WORKING}}, presence={B: stale})
    assert delayed_at(5, crashed_mid_round).first_compute_epoch() == 5
    ended = {B: {**stale, "state": "done"}, C: {**stale, "state": "done"}}
    assert delayed_at(5, FakeBoard(A, presence=ended)).first_compute_epoch() == 6  # a newcomer after the run
    assert delayed_at(0, FakeBoard(A, presence=ended)).first_compute_epoch() == 0  # state 0 makes epoch 0
    sync = delayed_at(5, FakeBoard(A, presence=ended))
    sync.delayed = False
    assert sync.first_compute_epoch() == 5
    decided = delayed_at(5, FakeBoard(A))
    assert decided.first_compute_epoch() == 5
    decided.board._presence = ended
    assert decided.first_compute_epoch() == 5  # decided once: start() and the optimizer see the same epoch


def test_the_final_state_is_adopted_only_when_it_exists_or_another_peer_is_making_it():
    calls = []
    final = delayed_at(9, FakeBoard(A, results={10: {B: res("s10", [B, C]), C: res("s10", [B, C])}}))
    final.adopt = lambda found: calls.append(("adopt", found.cid))
    assert final.adopt_final(10) and calls == [("adopt", "s10")]
    running = delayed_at(9, FakeBoard(A, work={10: {B: WORKING, C: DONE}}))
    running.catch_up = lambda epoch: calls.append(("catch_up", epoch))
    assert running.adopt_final(10) and calls[-1] == ("catch_up", 10)
    liar = delayed_at(9, FakeBoard(A, work={10: {X: WORKING}}))  # posts "working" and never makes state 10

    def never(epoch):
        raise SwarmError(f"epoch {epoch}: no canonical state of it appeared in the swarm")

    liar.catch_up = never
    assert not liar.adopt_final(10)  # waited once (catch_up's timeout), then ends on its own state: no crash
    calls.clear()
    nobody = delayed_at(9, FakeBoard(A, work={10: {A: WORKING, B: DONE}}))
    nobody.catch_up = nobody.adopt = lambda *a: calls.append(a)
    assert not nobody.adopt_final(10) and calls == []  # the others are done: nobody makes state 10, keep ours
