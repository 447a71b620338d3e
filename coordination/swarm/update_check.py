"""Check an epoch's update by recomputing it: epoch k-1's state + the round's committed contributions
must give exactly epoch k's canonical CID.

The round is deterministic end to end (order-independent aggregation of wire-precision vectors,
element-wise AdamW, byte-deterministic state files), so a checker needs no trust in the peers that
announced the CID: it fetches the parent state and each member's contribution by CID (content
addressing makes a served blob that differs from the commitment fail to verify, and names its
holder), aggregates them under the run spec's rule with weights clamped to the assignment, applies
the update, writes the state dir, and compares CIDs.

    record = RoundRecord.from_json(journal["rounds"]["7"])        # or from the DHT epoch board
    verdict = check_round(record, spec=spec, model=peft_model, store=store, fetch=None)
    verdict.ok, verdict.reason, verdict.culprits

CLI: `hivetune verify-update --run run.yaml --journal peer/consensus.json --store peer/checkpoints --epoch 7`.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

from coordination.errors import CheckpointError
from coordination.swarm.aggregation import aggregate, clamp_weight, to_wire
from coordination.swarm.training_state import adamw_update, lr_at, read_state_dir, unflatten, write_state_dir

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Member:
    peer_id: str
    contribution: str
    weight: float


@dataclass(frozen=True)
class RoundRecord:
    """The round that ended `epoch`: its parent state, its members' committed contributions, the claimed result."""

    epoch: int
    parent: str
    cid: str
    members: tuple[Member, ...]

    @classmethod
    def from_json(cls, raw: dict) -> RoundRecord:
        try:
            members = tuple(
                Member(str(m["peer_id"]), str(m["contribution"]), float(m["weight"])) for m in raw["members"]
            )
            return cls(int(raw["epoch"]), str(raw["parent"]), str(raw["cid"]), members)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed round record ({exc!r}): expected epoch, parent, cid, members") from exc


@dataclass
class UpdateVerdict:
    epoch: int
    ok: bool
    claimed: str
    recomputed: str | None
    reason: str = ""
    culprits: list[str] = field(default_factory=list)  # peer ids whose data failed, or who announced the claim


def recompute(record: RoundRecord, *, spec, model, store) -> str:
    """The CID that the round's parent and contributions produce (blocks must be in `store`)."""
    from coordination.swarm.consensus import read_contribution

    state = read_state_dir(store.checkout(record.parent), model)
    if state.epoch != record.epoch:
        raise CheckpointError(f"parent {record.parent} holds epoch {state.epoch}, the round claims {record.epoch}")
    max_weight = float(spec.samples_per_local_step)
    vectors = [read_contribution(store.checkout(m.contribution), model)[0] for m in record.members]
    weights = [clamp_weight(m.weight, max_weight) for m in record.members]
    avg = spec.averaging
    combined = aggregate(vectors, weights, method=avg.aggregator, trim_fraction=avg.trim_fraction,
                         value_bound=spec.grpo.max_grad_norm or None)  # fmt: skip
    grads = to_wire(combined, avg.compression)
    adamw_update(state, unflatten(grads, state.params), lr=lr_at(spec, record.epoch))
    state.epoch = record.epoch + 1
    with tempfile.TemporaryDirectory(prefix="hivetune-recompute-") as tmp:
        write_state_dir(tmp, model=model, state=state, spec=spec)
        return store.add_adapter(tmp, base_model=spec.model.base, base_revision=spec.model.revision,
                                 run_id=spec.run_id, step=state.epoch, parent=record.parent, pin=False)  # fmt: skip


def check_round(record: RoundRecord, *, spec, model, store, fetch: Callable[[str], None] | None = None):
    """Recompute `record` and compare with its claimed CID; an UpdateVerdict naming what failed."""
    for cid, owner in [(record.parent, "parent state"), *((m.contribution, m.peer_id) for m in record.members)]:
        try:
            if fetch is not None and not store.is_complete(cid):
                fetch(cid)
            store.checkout(cid)
        except CheckpointError as exc:
            culprit = [owner] if owner != "parent state" else []
            return UpdateVerdict(record.epoch, False, record.cid, None, f"{owner}: {cid} does not verify ({exc})",
                                 culprit)  # fmt: skip
    recomputed = recompute(record, spec=spec, model=model, store=store)
    if recomputed == record.cid:
        return UpdateVerdict(record.epoch, True, record.cid, recomputed)
    return UpdateVerdict(
        record.epoch, False, record.cid, recomputed,
        f"epoch {record.epoch + 1}: {record.cid} does not follow from {record.parent} and the committed "
        f"contributions (recomputed {recomputed})",
        [m.peer_id for m in record.members],
    )  # fmt: skip


def check_journal(spec, *, journal_path, store, epochs=None, initial_peers=()) -> list[UpdateVerdict]:
    """Check the rounds recorded in a peer's journal (all, or the rounds ending the given epochs)."""
    import json
    from pathlib import Path

    from coordination.errors import ConfigError

    try:
        journal = json.loads(Path(journal_path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{journal_path}: not a readable consensus journal ({exc}); pass a peer's consensus.json"
        ) from exc
    if journal.get("run_id") != spec.run_id:
        raise ConfigError(
            f"{journal_path} belongs to run {journal.get('run_id')}, not {spec.run_id}: pass its run.yaml"
        )
    rounds = {int(k): RoundRecord.from_json(v) for k, v in journal.get("rounds", {}).items()}
    wanted = sorted(rounds) if not epochs else [e for e in epochs if e in rounds]
    model, fetch, dht = verifier_model(spec), None, None
    if initial_peers:
        from coordination.checkpoints.fetch import fetch_checkpoint
        from coordination.swarm.dht_node import start_dht

        dht = start_dht(initial_peers=initial_peers, client_mode=True)
        fetch = lambda cid: fetch_checkpoint(dht, cid, store, prefix=spec.run_id)  # noqa: E731
    try:
        return [check_round(rounds[e], spec=spec, model=model, store=store, fetch=fetch) for e in wanted]
    finally:
        if dht is not None:
            dht.shutdown()


def verifier_model(spec):
    """The base with a LoRA of the spec's shape: only its parameter names and shapes are used."""
    from peft import get_peft_model

    from trainer.base_models import load_pinned_base

    model, _ = load_pinned_base(**spec.model.pins)
    return get_peft_model(model, spec.lora.peft_config())
