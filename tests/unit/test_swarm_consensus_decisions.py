"""EpochConsensus's decisions against lying announcers, with an in-memory epoch board (no network).

- a lone attacker announcing a "finished" epoch never makes honest peers skip their round;
- a majority of the expected members that finished without us does (the straggler case);
- after our round: ties go to our own result, a strictly larger agreeing group wins, no majority -> None.
"""

from types import SimpleNamespace

from coordination.swarm.consensus import EpochConsensus
from coordination.swarm.epoch_board import choose_canonical

A, B, C, X = (f"[owner:{n}]".encode() for n in "abcx")


class FakeBoard:
    def __init__(self, owner, work=None, results=None):
        self.owner, self._work, self._results = owner, work or {}, results or {}

    def work(self, epoch):
        return self._work.get(epoch, {})

    def results(self, epoch):
        return self._results.get(epoch, {})

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
