"""One peer's way through the epochs of a run, so that every honest member of a round ends on one CID.

For epoch k (the peer holds epoch k's canonical state):

1. ``begin_epoch``: post "working on k" (owner-protected, `EpochBoard`), so the group waits for it.
2. ``finish_epoch(grads)``: round the local (clipped) gradient to the wire format, store it
   content-addressed (the *contribution*, served to anyone), post "ready" with its CID and weight:
   the commitment is made before the round.
3. Wait until every expected member (last round's group + whoever posted "working") is ready, or
   ``straggler_timeout``; if the swarm already finished epoch k meanwhile, skip to step 6.
4. One `ConsensusAverager` round on epoch k's matchmaking key: every member gets the same aggregate.
5. Apply `adamw_update` at ``lr_at(spec, k)``, write the state dir, add it to the store (its CID),
   announce ``(cid, group)`` for epoch k+1, wait for the group's announcements.
6. The canonical CID of k+1 (`choose_canonical`) is what counts: a member that ended elsewhere (a
   faulty reducer, a split group), a straggler or a failed round **never keeps local-only updates**:
   it fetches the canonical state by CID from its holders, verified block by block
   (`fetch_checkpoint`; a holder serving wrong blocks is skipped and named), and continues from it.

With the run's ``averaging.delayed_updates`` (hivemind's delayed parameter updates) steps 2-6 of epoch k run in a
background thread (`ConsensusOptimizer`) while the peer computes epoch k+1 on state k: a round then never writes
the model (``load_model`` is off; the optimizer loads each canonical state between epochs), the rollouts of
epoch k come from state k-1 (`rollout_state_epoch`; validators audit them under it), and every state still
follows from its parent and its round's contributions alone, so it keeps one CID on every member.

``sync_with_swarm`` does step 6 at start-up, for a restarted peer or a late joiner: it adopts the
canonical state of the swarm's head epoch (lower median of announced epochs), so nothing is
replayed and a minority announcing epoch 10**6 is ignored.

    consensus = EpochConsensus(model=peft_model, dht=dht, spec=spec, store=store, server=server)
    consensus.sync_with_swarm(); consensus.begin_epoch()
    ... loss.backward(); clip ...
    outcome = consensus.finish_epoch(grads_by_name, weight=64)   # model now holds the canonical k+1 state
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from coordination.errors import SwarmError
from coordination.swarm.aggregation import to_wire
from coordination.swarm.consensus_averaging import AggregationRule, ConsensusAverager, epoch_group_bits
from coordination.swarm.epoch_board import Canonical, EpochBoard, choose_canonical, poll_intervals, support
from coordination.swarm.epoch_timing import PhaseTimer
from coordination.swarm.training_state import (
    TrainingState,
    adamw_update,
    flatten,
    lora_named_parameters,
    lr_at,
    read_state,
    rollout_state_epoch,
    saved_name,
    unflatten,
    write_state_dir,
)

logger = logging.getLogger(__name__)

CONTRIBUTION_META = "contribution.json"
ROUND_ATTEMPTS = 3


@dataclass
class EpochOutcome:
    """What happened to this peer's work in the round that ended `epoch`."""

    epoch: int  # the epoch whose rollouts and gradients this was (the state moved to epoch + 1)
    start_cid: str | None  # canonical state the rollouts were generated with
    cid: str  # canonical state of epoch + 1 (what the peer now holds)
    contribution: str | None  # CID of the contribution this peer committed to
    entered: bool  # whether that contribution is part of the canonical round
    group_size: int  # members of the canonical round
    seconds: float  # from ready to holding the canonical state
    adopted: bool  # the peer fetched the canonical state instead of computing it
    phases: dict = field(default_factory=dict)  # seconds per phase of the round (coordination.swarm.epoch_timing)
    spans: dict = field(default_factory=dict)  # phase -> (unix start, end) of its last occurrence


class EpochConsensus:
    """Drives one peer through epochs (module docstring). Keyword-only; one per peer process (rank 0).

    :param store: CheckpointStore for epoch states and contributions; :param server: CheckpointServer
        that announces and serves them (None: local only, e.g. a solo run).
    :param straggler_timeout: s to wait for expected members; default from the run spec.
    """

    def __init__(
        self,
        *,
        model,
        dht,
        spec,
        store,
        server=None,
        straggler_timeout: float | None = None,
        journal_path=None,
        address: str | None = None,
    ):
        self.model, self.dht, self.spec, self.store, self.server = model, dht, spec, store, server
        self.journal_path = None if journal_path is None else Path(journal_path)
        self.address = address  # the peer's (Ethereum) address: receipts name it, rounds list it
        avg = spec.averaging
        self.straggler_timeout = avg.straggler_timeout if straggler_timeout is None else straggler_timeout
        self.state = TrainingState.from_model(model)
        self.names = [n for n, _ in lora_named_parameters(model)]
        self.board = EpochBoard(dht=dht, run_id=spec.run_id)
        self.peer_id = str(dht.peer_id)
        self.rule = AggregationRule(
            method=avg.aggregator,
            trim_fraction=avg.trim_fraction,
            max_weight=float(spec.samples_per_local_step),
            value_bound=spec.grpo.max_grad_norm or None,
        )
        self._buffer = torch.zeros(self.state.numel(), dtype=torch.float32)
        self.averager = _start_averager(self._buffer, dht, spec, self.rule)
        self.canonical_cids: dict[int, str] = {}
        self.rounds: dict[int, dict] = {}  # epoch -> the round that produced it (update_check.RoundRecord form)
        self.outcomes: list[EpochOutcome] = []
        self.last_group: tuple[bytes, ...] = ()
        # whether rounds write the model's parameters (False with delayed updates: the model trains on while a
        # round runs in the background; ConsensusOptimizer loads the state into it between epochs)
        self.load_model = True
        self.delayed = bool(avg.delayed_updates)
        self._first_compute: int | None = None  # first_compute_epoch, decided once

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def start_cid(self) -> str | None:
        return self.canonical_cids.get(rollout_state_epoch(self.spec, self.epoch))

    def first_compute_epoch(self) -> int:
        """The epoch whose rollouts a peer holding our state h computes first (no round of ours in flight): h,
        decided once at `start`. With delayed updates epoch k's rollouts come from state k-1, so a peer at h > 0
        computes h on state h-1 and takes part in round h: that is what lets a whole swarm resume from its
        journals (nobody else would run round h). If the swarm already runs round h without it, its gradients
        are dropped as too late and it adopts state h+1. Only when every other peer is done (the run ended)
        does it go to h+1, i.e. stop there (`adopt_final`)."""
        if self._first_compute is None:
            self._first_compute = self._choose_first_compute_epoch()
        return self._first_compute

    def _choose_first_compute_epoch(self) -> int:
        if not self.delayed or self.epoch == 0:
            return self.epoch
        # Not "does another peer work on h+1": a post of a peer that crashed mid-round looks the same, and a swarm
        # whose peers all crashed would then wait forever for a round h nobody runs. If round h runs without us,
        # our epoch-h gradients come too late and are dropped (one epoch of compute lost, never a wrong state).
        others = {o: p for o, p in self.board.presence().items() if o != self.board.owner}
        ended = bool(others) and all(p.get("state") == "done" for p in others.values())
        # (ended: every other peer stopped for good, e.g. a newcomer after the run: there is no round h to join)
        return self.epoch + 1 if ended else self.epoch

    def adopt_final(self, epoch: int) -> bool:
        """The run's end with delayed updates: adopt `epoch`'s canonical state (the last one) if it is there or
        another peer is still running the round that makes it (it posted "working" on `epoch`); otherwise
        nobody will make it (the others are done): keep ours. Returns whether it adopted."""
        found = self.board.canonical(epoch)
        if found is None:
            running = {o for o, s in self.board.work(epoch).items() if s.get("state") == "working"}
            if not running - {self.board.owner}:
                logger.info(f"no peer is running the round that ends epoch {epoch - 1}: ending on our state")
                return False
            try:  # bounded: a "working" post that never leads to a state (a crash, a liar) costs one timeout
                self.catch_up(epoch)
            except SwarmError as err:
                logger.warning(f"{err}; ending on our epoch {self.epoch} state")
                return False
            return True
        self.adopt(found)
        return True

    def load_rollout_state(self, epoch: int) -> None:
        """Load into the model the canonical state `epoch`'s rollouts come from (`rollout_state_epoch`): ours, or
        with delayed updates the one before it (from our store, or fetched by CID and verified)."""
        source = rollout_state_epoch(self.spec, epoch)
        cid = self.canonical_cids.get(source)
        if cid is None:
            found = self.board.canonical(source)
            if found is None:
                raise SwarmError(f"epoch {epoch}: no canonical state of epoch {source} (its rollouts' state) is "
                                 "known; check connectivity to the other peers, or restart the peer")  # fmt: skip
            cid = found.cid
        self._verified_state(cid, source).load_into(self.model)
        self.canonical_cids[source] = cid

    # -- start-up -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Resume from our journal (a restart) or publish the epoch-0 state, join the swarm's head, begin the epoch."""
        resumed = self._resume_from_journal()
        if not resumed:
            cid = self.save_state()
            self.board.announce(self.epoch, cid=cid, group=[self.board.owner], peer_id=self.peer_id, contribution=None)
        self.sync_with_swarm()
        self._write_journal()
        self.begin_epoch(self.first_compute_epoch())

    def _resume_from_journal(self) -> bool:
        import json

        if self.journal_path is None or not self.journal_path.is_file():
            return False
        try:
            journal = json.loads(self.journal_path.read_text())
            epochs = (
                {int(k): v for k, v in journal["epochs"].items()} if journal.get("run_id") == self.spec.run_id else {}
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.warning(f"{self.journal_path} is unreadable: starting from the swarm's state")
            return False
        for epoch in sorted(epochs, reverse=True):
            if self.store.is_complete(epochs[epoch]):
                self.canonical_cids.update(epochs)
                self.adopt(Canonical(epoch, epochs[epoch], (), 0, ()))
                logger.info(f"resumed from our epoch {epoch} state {epochs[epoch]}")
                return True
        return False

    def _write_journal(self) -> None:
        import json
        import os

        if self.journal_path is None:
            return
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.journal_path.with_suffix(".tmp")
        journal = {"run_id": self.spec.run_id, "epochs": self.canonical_cids, "rounds": self.rounds}
        tmp.write_text(json.dumps(journal, indent=1))
        os.replace(tmp, self.journal_path)

    def sync_with_swarm(self) -> bool:
        """Adopt the canonical state of the swarm's head epoch if it is ahead of ours. Returns whether it did."""
        head = self.board.head()
        if head is None or head.epoch <= self.epoch:
            return False
        logger.info(f"swarm is at epoch {head.epoch} ({head.cid}); we are at {self.epoch}: fetching its state")
        self.adopt(head)
        return True

    def begin_epoch(self, epoch: int | None = None) -> None:
        """Post "working on `epoch`" (default: ours), so the round of that epoch waits for our contribution."""
        self.board.post_work(self.epoch if epoch is None else epoch, state="working", peer_id=self.peer_id)

    def catch_up(self, epoch: int) -> None:
        """Delayed updates, a peer that (re)joined holding state epoch-1: it computed epoch's rollouts on it, and
        adopts epoch's canonical state (the round it was not part of) before its own round of `epoch`."""
        avg = self.spec.averaging
        found = self._wait_any_canonical(epoch, timeout=self.straggler_timeout + avg.averaging_timeout
                                         + 4 * avg.matchmaking_time)  # fmt: skip
        if found is None:
            raise SwarmError(f"epoch {epoch}: no canonical state of it appeared in the swarm; check connectivity to "
                             "the other peers, or restart the peer to rejoin at the swarm's head")  # fmt: skip
        self.adopt(found)

    # -- one epoch ----------------------------------------------------------------------------------
    def finish_epoch(self, grads: dict[str, torch.Tensor], *, weight: float) -> EpochOutcome:
        started, epoch, start_cid, timer = time.monotonic(), self.epoch, self.start_cid, PhaseTimer()
        cpu_started = time.thread_time()
        # (start_cid: the state epoch's rollouts were generated with, epoch's own or with delayed updates epoch-1's)
        with timer("commit"):
            contribution = to_wire(flatten(grads, self.names), self.spec.averaging.compression)
            contribution_cid = self.store_contribution(contribution, epoch=epoch, weight=weight)
            self.board.post_work(epoch, state="ready", contribution=contribution_cid, weight=weight,
                                 peer_id=self.peer_id)  # fmt: skip
        ours, canonical = None, None
        for attempt in range(ROUND_ATTEMPTS):
            with timer("wait_group"):
                canonical, ready = self._wait_for_group(epoch)
            if canonical is not None:  # the swarm finished this epoch without us
                break
            # the first attempt insists on every peer known to be ready; a retry takes whoever is there, but never
            # fewer than a majority of the ready peers (nor the run's min_group): two halves that each went on
            # alone would split the run into two chains that never agree again (seen: after one failed round,
            # both peers of a 2-peer run retried as groups of 1 and disagreed on every later epoch).
            # (Assembling as soon as all ready peers joined, hivemind's target_group_size, saved ~0.7 s a round
            # but made a reducer fail a round now and then: a follower not yet in the group it was sent parts of.)
            self.averager.set_min_group_size(round_min_group(len(ready), self.spec.averaging.min_group, attempt))
            before = copy.deepcopy(self.state)
            ours = self._round(epoch, contribution, contribution_cid, weight, timer=timer)
            if ours is not None:
                with timer("resolve"):
                    canonical = self._resolve_after_round(epoch, ours)
                if canonical is not None:
                    break
                logger.warning(f"epoch {epoch}: the group's members disagree on the result (no majority): retrying")
                self._roll_back(before)
                ours = None
                continue
            logger.warning(f"epoch {epoch}: averaging round failed (attempt {attempt + 1}/{ROUND_ATTEMPTS})")
            with timer("wait_canonical"):
                canonical = self._wait_any_canonical(epoch + 1, timeout=self.spec.averaging.matchmaking_time * 2)
            if canonical is not None:
                break
        if canonical is None:
            raise SwarmError(
                f"epoch {epoch}: no averaging round completed and no canonical state appeared after "
                f"{ROUND_ATTEMPTS} attempts; check connectivity to the other peers (or --client-mode)"
            )
        adopted = ours is None or canonical.cid != ours[0]
        if adopted:
            if ours is not None:
                logger.warning(
                    f"epoch {epoch}: our state {ours[0]} lost to the canonical {canonical.cid}: adopting it"
                )
            with timer("adopt"):
                self.adopt(canonical)
        self.last_group = canonical.group
        outcome = EpochOutcome(
            epoch=epoch,
            start_cid=start_cid,
            cid=canonical.cid,
            contribution=contribution_cid,
            entered=not adopted,
            group_size=len(canonical.group),
            seconds=time.monotonic() - started,
            adopted=adopted,
            phases={**timer.seconds, "cpu": time.thread_time() - cpu_started},
            spans=timer.spans,
        )
        self.outcomes.append(outcome)
        self._write_journal()
        return outcome

    def _wait_for_group(self, epoch: int) -> tuple[Canonical | None, set]:
        """Wait until the expected members are ready: (None, ready owners), or (epoch+1's canonical, ...) if a
        majority of the expected members already finished the epoch without us (a lone announcer never counts)."""
        deadline, min_group, said = time.monotonic() + self.straggler_timeout, self.spec.averaging.min_group, 0.0
        sleeps = poll_intervals()
        while True:
            work = self.board.work(epoch)
            finished = {owner for owner, status in work.items() if status.get("state") == "done"}
            expected = (set(self.last_group) | set(work) | {self.board.owner}) - finished
            done = self.board.canonical(epoch + 1)
            if done is not None and 2 * done.votes > len(expected):
                return done, set()
            ready = {owner for owner, status in work.items() if status.get("state") == "ready"}
            if len(ready) < min_group:
                deadline = time.monotonic() + self.straggler_timeout  # the straggler clock starts at min_group
                if time.monotonic() - said > 30:
                    logger.info(f"epoch {epoch}: {len(ready)} of at least {min_group} peers ready; waiting")
                    said = time.monotonic()
            elif expected <= ready or time.monotonic() > deadline:
                return None, ready
            time.sleep(next(sleeps))

    def _resolve_after_round(self, epoch: int, ours) -> Canonical:
        """Epoch+1's canonical once our group announced: ours unless another candidate has strictly more votes."""
        cid, group = ours
        self.board.wait_canonical(epoch + 1, members=set(group), timeout=self.straggler_timeout)
        results = self.board.results(epoch + 1)
        best, mine = choose_canonical(epoch + 1, results), support(epoch + 1, results, cid, group)
        if 2 * mine.votes > len(mine.group) and (best is None or best.votes <= mine.votes):
            return mine  # ties go to the result we computed ourselves
        return best  # a larger agreeing group, or None: no majority anywhere

    def _roll_back(self, before: TrainingState) -> None:
        """Undo a round whose result found no majority: back to the epoch's canonical state."""
        self.canonical_cids.pop(before.epoch + 1, None)
        self.rounds.pop(before.epoch + 1, None)
        self.state = before
        if self.load_model:
            self.state.load_into(self.model)

    def _wait_any_canonical(self, epoch: int, timeout: float | None = None) -> Canonical | None:
        sleeps = poll_intervals()
        deadline = time.monotonic() + (self.straggler_timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            found = self.board.canonical(epoch)
            if found is not None:
                return found
            time.sleep(next(sleeps))
        return self.board.canonical(epoch)

    def _round(self, epoch: int, contribution, contribution_cid: str, weight: float, *, timer=None):
        """One averaging round, update, store, announce. (cid, group) on success, None if the round failed."""
        timer = timer if timer is not None else PhaseTimer()
        with self.averager.get_tensors() as tensors:
            tensors[0].copy_(contribution)
        self.averager.set_group_bits(epoch_group_bits(epoch))
        gather = {"weight": weight, "owner": self.board.owner, "contribution": contribution_cid, "epoch": epoch,
                  "address": self.address}  # fmt: skip
        avg = self.spec.averaging
        try:
            with timer("allreduce"):  # matchmaking + butterfly all-reduce
                gathered = self.averager.step(gather=gather, weight=float(weight),
                                              timeout=avg.matchmaking_time * 4 + 10)  # fmt: skip
        except Exception as exc:  # hivemind raises several types for a failed round
            logger.warning(f"epoch {epoch}: round failed: {exc!r}")
            return None
        if not gathered:
            return None
        with timer("save"):
            return self._apply_and_announce(epoch, contribution_cid, gathered)

    def _apply_and_announce(self, epoch: int, contribution_cid: str, gathered: dict):
        """The round's aggregate -> AdamW step, store the state, announce (cid, group) for epoch + 1."""
        with self.averager.get_tensors() as tensors:
            aggregate = tensors[0].clone()
        group = sorted(
            {m["owner"] for m in gathered.values() if isinstance(m, dict) and isinstance(m.get("owner"), bytes)}
        )
        adamw_update(self.state, unflatten(aggregate, self.state.params), lr=lr_at(self.spec, epoch))
        self.state.epoch = epoch + 1
        cid = self.save_state()
        record = round_record(epoch, self.canonical_cids.get(epoch), cid, gathered)
        self.rounds[epoch + 1] = record
        self.board.announce(epoch + 1, cid=cid, group=group, peer_id=self.peer_id, contribution=contribution_cid,
                            members=record["members"], parent=record["parent"])  # fmt: skip
        logger.info(f"epoch {epoch} -> {epoch + 1}: {len(group)} peer(s), state {cid}")
        return cid, group

    # -- states and contributions --------------------------------------------------------------------
    def save_state(self) -> str:
        """Write the current state (into the model too, unless `load_model` is off), add it to the store,
        announce it; return its CID."""
        if self.load_model:
            self.state.load_into(self.model)
        with tempfile.TemporaryDirectory(prefix="hivetune-state-") as tmp:
            write_state_dir(tmp, model=self.model, state=self.state, spec=self.spec)
            cid = self.store.add_adapter(
                tmp,
                base_model=self.spec.model.base,
                base_revision=self.spec.model.revision,
                run_id=self.spec.run_id,
                step=self.state.epoch,
                parent=self.canonical_cids.get(self.state.epoch - 1),
            )
        self.canonical_cids[self.state.epoch] = cid
        if self.server is not None:
            self.server.announce(cid)
        return cid

    def store_contribution(self, contribution: torch.Tensor, *, epoch: int, weight: float) -> str:
        """Add this round's contribution (wire-precision gradient by adapter names) to the store; return its CID."""
        cid = write_contribution(self.store, self.model, self.state, contribution, epoch=epoch, weight=weight,
                                 spec=self.spec)  # fmt: skip
        if self.server is not None:
            self.server.announce(cid)
        return cid

    def adopt(self, canonical: Canonical) -> None:
        """Fetch (if needed), verify and load the canonical state; never trust a self-declared donor."""
        logger.info(f"adopting the canonical epoch {canonical.epoch} state {canonical.cid}")
        state = self._verified_state(canonical.cid, canonical.epoch)
        if self.load_model:
            state.load_into(self.model)
        self.state = state
        self.canonical_cids[state.epoch] = canonical.cid
        if self.server is not None:
            self.server.announce(canonical.cid)

    def _verified_state(self, cid: str, epoch: int) -> TrainingState:
        """State `cid` from our store, fetched from its holders first if incomplete (verified block by block),
        refused unless it holds `epoch`."""
        from coordination.checkpoints.fetch import fetch_checkpoint

        if not self.store.is_complete(cid):
            self._fetch_with_retries(cid, fetch_checkpoint)
        state = read_state(self.store.checkout(cid), self.names)
        if state.epoch != epoch:
            raise SwarmError(f"checkpoint {cid} holds epoch {state.epoch}, not {epoch}")
        return state

    def linger(self, timeout: float | None = None, *, seen_within: float | None = None) -> set:
        """Stop training at our epoch E, but keep serving E's state while a peer that may still need it has
        not reached E: the members of our last round, peers at E-1 that missed it, and any peer seen training
        within the last `seen_within` (default: `timeout`) s. One that crashed may be restarting: it resumes
        from its journal and must fetch the states it missed, and finishing peers may be the only holders.
        Stops when all of them hold epoch E or `timeout` (default: straggler_timeout) passes. Returns the
        owners still behind."""
        from hivemind.utils import get_dht_time

        epoch = self.epoch
        wait = self.straggler_timeout if timeout is None else timeout
        # taken before our own "done"; we are active too, and subtracted below
        since = get_dht_time() - (wait if seen_within is None else seen_within)
        self.board.post_work(epoch, state="done", peer_id=self.peer_id)
        deadline = time.monotonic() + wait
        behind = set(self.last_group) | set(self.board.work(epoch - 1)) | self.board.active_since(since)
        behind -= {self.board.owner}
        while behind:
            behind -= self.board.settled(epoch)  # it holds epoch E, or it is done and needs nothing of ours
            if not behind or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if behind:
            logger.warning(f"epoch {epoch}: {len(behind)} peer(s) seen in the run never reached it; stopping anyway")
        return behind

    def _fetch_with_retries(self, cid: str, fetch_checkpoint) -> None:
        """Fetch `cid` from whichever holders announce it; a holder can leave or come up late, so retry (with
        fresh provider lookups) until straggler_timeout before giving up with the fetch's own error."""
        from coordination.errors import FetchError

        deadline = time.monotonic() + max(self.straggler_timeout, 30.0)
        while True:
            try:
                fetch_checkpoint(self.dht, cid, self.store, prefix=self.spec.run_id, timeout=300.0)
                return
            except FetchError as exc:
                if time.monotonic() > deadline:
                    raise
                logger.warning(f"fetching {cid}: {exc}; retrying")
                time.sleep(2.0)

    def shutdown(self) -> None:
        self.averager.shutdown()


def round_min_group(ready: int, min_group: int, attempt: int) -> int:
    """The smallest group a round's attempt may assemble: every ready peer on the first attempt, a strict majority
    of them on a retry (so at most one group of a split can form), never below the run's min_group."""
    floor = max(1, min_group)
    return max(floor, ready) if attempt == 0 else max(floor, ready // 2 + 1)


def round_record(epoch: int, parent: str | None, cid: str, gathered: dict) -> dict:
    """What anyone needs to recompute the round that ended `epoch` (coordination.swarm.update_check)."""
    members = []
    for peer_id, meta in sorted(gathered.items(), key=lambda kv: str(kv[0])):
        if isinstance(meta, dict):
            members.append({"peer_id": str(peer_id), "contribution": meta.get("contribution"),
                            "weight": meta.get("weight"), "address": meta.get("address")})  # fmt: skip
    return {"epoch": epoch, "parent": parent, "cid": cid, "members": members}


def _start_averager(buffer, dht, spec, rule: AggregationRule) -> ConsensusAverager:
    from hivemind.compression import Float16Compression, NoCompression

    avg = spec.averaging
    return ConsensusAverager(
        [buffer],
        dht,
        rule=rule,
        prefix=f"{spec.run_id}_consensus",
        start=True,
        min_group_size=1,
        min_matchmaking_time=avg.matchmaking_time,
        request_timeout=max(1.0, avg.matchmaking_time / 2),
        allreduce_timeout=avg.averaging_timeout,
        next_chunk_timeout=avg.averaging_timeout / 2,
        compression=Float16Compression() if avg.compression == "fp16" else NoCompression(),
    )


def write_contribution(store, model, state: TrainingState, contribution, *, epoch: int, weight: float, spec) -> str:
    """Store a contribution as an adapter-shaped dir (gradient tensors under the adapter's saved names, at wire
    precision) + its metadata; return its CID. Never touches the live parameters."""
    import json

    from safetensors.torch import save_file

    from coordination.swarm.training_state import ADAPTER_CONFIG, ADAPTER_WEIGHTS, adapter_config_json

    dtype = torch.float16 if spec.averaging.compression == "fp16" else torch.float32
    grads = unflatten(contribution, state.params)
    tensors = {saved_name(n): t.to(dtype).contiguous() for n, t in grads.items()}
    with tempfile.TemporaryDirectory(prefix="hivetune-contribution-") as tmp:
        save_file(
            {k: tensors[k] for k in sorted(tensors)}, str(Path(tmp) / ADAPTER_WEIGHTS), metadata={"format": "pt"}
        )
        (Path(tmp) / ADAPTER_CONFIG).write_text(adapter_config_json(getattr(model, "module", model), spec))
        meta = {"kind": "contribution", "epoch": epoch, "weight": weight, "wire": spec.averaging.compression}
        (Path(tmp) / CONTRIBUTION_META).write_text(json.dumps(meta, sort_keys=True) + "\n")
        return store.add_adapter(tmp, base_model=spec.model.base, base_revision=spec.model.revision,
                                 run_id=spec.run_id, step=epoch)  # fmt: skip


def read_contribution(directory: Path | str, model) -> tuple[torch.Tensor, dict]:
    """(flat contribution vector in parameter order, its metadata) from a stored contribution dir."""
    import json

    from safetensors.torch import load_file

    directory = Path(directory)
    tensors = load_file(str(directory / "adapter_model.safetensors"))
    names = [n for n, _ in lora_named_parameters(model)]
    saved = {saved_name(n): n for n in names}
    by_param = {saved[k]: v for k, v in tensors.items() if k in saved}
    if set(by_param) != set(names):
        raise SwarmError(f"contribution {directory} does not cover the adapter's parameters")
    return flatten({n: t.to(torch.float32) for n, t in by_param.items()}, names), json.loads(
        (directory / CONTRIBUTION_META).read_text()
    )
