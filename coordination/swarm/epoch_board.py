"""The run's epoch board in the DHT: who works on an epoch, which CID each round member ended with, and
the canonical checkpoint of every epoch.

Every record is stored under a subkey that carries its writer's RSA public key (hivemind's
`RSASignatureValidator`), so only its owner can write or overwrite it; the owner key is a member's
identity in the consensus (it travels in the round's gathered metadata, next to its libp2p id).

Keys (all prefixed by the run id):

- ``{run}_work_{k}``: a peer's status for epoch k: ``{"state": "working" | "ready", "contribution": cid,
  "weight": w, "peer_id": ...}``. Posting "working" makes the group wait for it (up to
  ``averaging.straggler_timeout``); "ready" carries the commitment to its gradient contribution,
  made before the round.
- ``{run}_epoch_{k}``: a member's result of the round that ends epoch k-1: ``{"cid": state CID,
  "group": [owner keys of the round, sorted], "contribution": ..., "peer_id": ...}``.
- ``{run}_head``: each peer's latest epoch and CID.
- ``{run}_peers``: each peer's latest status, ``{"epoch": k, "state": ..., "time": dht time}`` (written with
  every work status): who was training recently, so that a peer which finishes keeps serving its final
  state to one that crashed and is restarting (`EpochConsensus.linger`).

**Canonical CID of epoch k** (`choose_canonical`): among the ``epoch_k`` records, those whose
writer is in the group it names vote for ``(cid, group)``; a candidate is valid when more than half
of its group voted for it; the valid candidate with the most votes wins (then the larger group, then
the smaller CID). A member alone in a group of one is valid, but loses against any larger agreeing
group. **Head epoch** (`head_epoch`): the lower median of the peers' latest epochs, so a minority that
announces epoch 10**6 moves nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass

from hivemind.dht.crypto import RSASignatureValidator
from hivemind.utils import get_dht_time

logger = logging.getLogger(__name__)


def poll_intervals(first: float = 0.05, factor: float = 1.5, cap: float = 0.5):
    """Sleeps between DHT polls: quick at first (a round's members arrive within a fraction of a second of each
    other, and every 0.1 s of waiting is idle time of the whole group), then backing off to `cap` (a long wait
    for a straggler polls no more often than twice a second)."""
    delay = first
    while True:
        yield delay
        delay = min(cap, delay * factor)


DEFAULT_TTL_S = 24 * 3600.0


@dataclass(frozen=True)
class Canonical:
    epoch: int
    cid: str
    group: tuple[bytes, ...]
    votes: int
    holders: tuple[str, ...]  # libp2p ids of the members that announced it (where to fetch it)


def choose_canonical(epoch: int, records: dict[bytes, dict]) -> Canonical | None:
    """The canonical (cid, group) of `epoch` from its `epoch_k` records (see module docstring), or None."""
    votes: Counter = Counter()
    holders: dict[tuple, list[str]] = {}
    for owner, record in records.items():
        parsed = _parse_result(owner, record)
        if parsed is None:
            continue
        votes[parsed] += 1
        holders.setdefault(parsed, []).append(str(record.get("peer_id", "")))
    valid = [(count, len(group), cid, group) for (cid, group), count in votes.items() if 2 * count > len(group)]
    if not valid:
        return None
    count, _, cid, group = max(valid, key=lambda v: (v[0], v[1], _neg(v[2])))
    return Canonical(epoch, cid, group, count, tuple(holders[(cid, group)]))


def support(epoch: int, records: dict[bytes, dict], cid: str, group) -> Canonical:
    """The votes for one (cid, group) candidate among `records` (0 votes if nobody announced it)."""
    key = (cid, tuple(sorted(set(group))))
    voters = [r for o, r in records.items() if _parse_result(o, r) == key]
    return Canonical(epoch, cid, key[1], len(voters), tuple(str(r.get("peer_id", "")) for r in voters))


def _neg(cid: str) -> tuple:
    return tuple(-ord(c) for c in cid)


def _parse_result(owner: bytes, record) -> tuple[str, tuple[bytes, ...]] | None:
    if not isinstance(record, dict):
        return None
    cid, group = record.get("cid"), record.get("group")
    if not isinstance(cid, str) or not isinstance(group, list | tuple) or not group:
        return None
    if not all(isinstance(g, bytes) for g in group) or owner not in group:
        return None
    return cid, tuple(sorted(set(group)))


def head_epoch(heads: dict[bytes, dict]) -> int | None:
    """Lower median of the peers' announced latest epochs (None when nobody announced)."""
    epochs = sorted(int(h["epoch"]) for h in heads.values() if isinstance(h, dict) and _is_epoch(h.get("epoch")))
    if not epochs:
        return None
    return epochs[(len(epochs) - 1) // 2]


def _is_epoch(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**40


class EpochBoard:
    """Owner-protected epoch records of one run in the DHT (module docstring).

    :param ttl_s: how long records live; validators and joiners read canonical CIDs within it.
    """

    def __init__(self, *, dht, run_id: str, ttl_s: float = DEFAULT_TTL_S):
        self.dht, self.run_id, self.ttl_s = dht, run_id, ttl_s
        validator = RSASignatureValidator()
        dht.add_validators([validator])
        self.owner = validator.local_public_key

    def _key(self, kind: str, epoch: int | None = None) -> str:
        return f"{self.run_id}_{kind}" if epoch is None else f"{self.run_id}_{kind}_{epoch}"

    def _store(self, key: str, value: dict) -> bool:
        return bool(self.dht.store(key, subkey=self.owner, value=value, expiration_time=get_dht_time() + self.ttl_s))

    def _read(self, key: str) -> dict[bytes, dict]:
        found = self.dht.get(key, latest=True)
        if found is None or not isinstance(found.value, dict):
            return {}
        out = {}
        for subkey, item in found.value.items():
            if isinstance(subkey, bytes) and b"[owner:" in subkey:
                out[subkey] = getattr(item, "value", None)
        return out

    # -- work status ------------------------------------------------------------------------------
    def post_work(self, epoch: int, **status) -> bool:
        presence = {"epoch": epoch, "state": status.get("state"), "time": get_dht_time()}
        self._store(self._key("peers"), presence)
        return self._store(self._key("work", epoch), status)

    def presence(self) -> dict[bytes, dict]:
        """owner -> its latest status (epoch, state, time), well-formed records only."""
        out = {}
        for owner, value in self._read(self._key("peers")).items():
            if isinstance(value, dict) and _is_epoch(value.get("epoch")) and isinstance(value.get("time"), float):
                out[owner] = value
        return out

    def settled(self, epoch: int) -> set[bytes]:
        """Owners that need nothing more of `epoch`'s holders: they posted a status for it or a later one, or
        their latest status is "done" (they stopped for good). One read of the presence records."""
        later_or_done = {o for o, p in self.presence().items() if p["epoch"] >= epoch or p.get("state") == "done"}
        return set(self.work(epoch)) | later_or_done

    def active_since(self, dht_time: float) -> set[bytes]:
        """Owners that posted a status (other than "done") at or after `dht_time`: peers training recently."""
        return {o for o, p in self.presence().items() if p["time"] >= dht_time and p.get("state") != "done"}

    def work(self, epoch: int) -> dict[bytes, dict]:
        return {o: v for o, v in self._read(self._key("work", epoch)).items() if isinstance(v, dict)}

    # -- round results ----------------------------------------------------------------------------
    def announce(self, epoch: int, *, cid: str, group: list[bytes], peer_id: str, contribution: str | None,
                 members: list | None = None, parent: str | None = None) -> bool:  # fmt: skip
        """Announce our result of the round that ended epoch-1; `members` (peer id, address, contribution, weight of
        each member) and `parent` let anyone recompute it (coordination.swarm.update_check) and see whose work
        entered it."""
        value = {"cid": cid, "group": sorted(group), "peer_id": peer_id, "contribution": contribution,
                 "members": members or [], "parent": parent}  # fmt: skip
        ok = self._store(self._key("epoch", epoch), value)
        self._store(self._key("head"), {"epoch": epoch, "cid": cid, "peer_id": peer_id})
        return ok

    def results(self, epoch: int) -> dict[bytes, dict]:
        return self._read(self._key("epoch", epoch))

    def canonical(self, epoch: int) -> Canonical | None:
        return choose_canonical(epoch, self.results(epoch))

    def round_of(self, epoch: int) -> dict | None:
        """The canonical round that produced `epoch` (its members' contributions), as its announcers recorded it."""
        found = self.canonical(epoch)
        if found is None:
            return None
        for owner, record in self.results(epoch).items():
            if owner in found.group and record.get("cid") == found.cid and record.get("members"):
                return {"epoch": epoch - 1, "parent": record.get("parent"), "cid": found.cid,
                        "members": record["members"]}  # fmt: skip
        return None

    def entered(self, epoch: int, contribution: str) -> bool:
        """Whether `contribution` is one of the contributions of the canonical round that ended `epoch`."""
        found = self.round_of(epoch + 1)
        return found is not None and any(m.get("contribution") == contribution for m in found["members"])

    def heads(self) -> dict[bytes, dict]:
        return self._read(self._key("head"))

    def head(self) -> Canonical | None:
        """The canonical checkpoint of the swarm's head epoch (or of the latest earlier epoch that has one)."""
        epoch = head_epoch(self.heads())
        while epoch is not None and epoch >= 0:
            found = self.canonical(epoch)
            if found is not None:
                return found
            epoch -= 1
        return None

    def wait_canonical(self, epoch: int, *, members: set[bytes], timeout: float):
        """Wait until every one of `members` announced for `epoch` (or `timeout`), then return its canonical."""
        deadline, sleeps = time.monotonic() + timeout, poll_intervals()
        while True:
            results = self.results(epoch)
            if members <= set(results) or time.monotonic() > deadline:
                return choose_canonical(epoch, results)
            time.sleep(next(sleeps))
