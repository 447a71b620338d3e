"""A validator: audits an epoch's receipts, signs verdicts, re-checks other validators' findings; and
what `hivetune validate` does with it over a run's published records.

    validator = Validator(private_key=key, facts=facts, fetch=store_fetch, rollout_rate=0.1)
    validator.require_registered(staking_client)          # stake-registered on chain, or ValidatorNotRegistered
    verdicts = validator.audit_epoch(signed_receipts, epoch=3)   # drawn records of all receipts batched
    validator.confirms(signed_receipt, finding, epoch=3)   # True when it reproduces another validator's finding
    report = validate_epochs(validator, receipts_by_epoch)     # {"verdicts": [...], "cost": {...}}

    with run_validator(spec, key, records_dir=Path("records"), epochs=[0, 1]) as (validator, receipts):
        report = validate_epochs(validator, receipts)          # the same, over published records

`rollout_rate` is the share of each receipt's rollouts that get a forward-pass recomputation
(at least `min_rollouts`); the cheap exact checks (counts, prompts, rewards) run on every record.
The checks themselves are in `coordination.verify.audit`; the run's facts in `coordination.verify.run_facts`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from eth_account import Account

from coordination.attest.receipts import SignedReceipt
from coordination.errors import AttestationError, ConfigError
from coordination.verify.audit import (
    AuditCost,
    RecordFetcher,
    audit_receipt,
    check_round,
    draw_rollouts,
    finish_audits,
    prepare_audit,
)
from coordination.verify.rulings import Finding, Kind, SignedVerdict, Status, Verdict, sign_verdict, verdict_json
from coordination.verify.run_facts import RunFacts, facts_for_run

logger = logging.getLogger(__name__)

DEFAULT_ROLLOUT_RATE = 0.1


class ValidatorNotRegistered(AttestationError):
    """The validator's address is not a registered validator in the Staking contract."""


class Validator:
    def __init__(
        self,
        *,
        private_key,
        facts: RunFacts,
        fetch: RecordFetcher,
        rollout_rate: float = DEFAULT_ROLLOUT_RATE,
        min_rollouts: int = 1,
    ):
        self.account = Account.from_key(private_key)
        self.facts, self.fetch = facts, fetch
        self.rollout_rate, self.min_rollouts = rollout_rate, min_rollouts
        self.cost = AuditCost()

    @property
    def address(self) -> str:
        return self.account.address

    def require_registered(self, staking) -> None:
        """Raise ValidatorNotRegistered unless `staking.is_validator(self.address)`."""
        if not staking.is_validator(self.address):
            raise ValidatorNotRegistered(
                f"{self.address} is not an active validator: stake at least the minimum (`hivetune stake`), "
                "`hivetune register-validator`, then `hivetune activate-validator` after the activation delay"
            )

    def policy(self, cid: str):
        """(model, tokenizer) of checkpoint `cid`; the loader (a PolicyPool) bounds what is kept in memory."""
        return self.facts.load_policy(cid)

    def _draw(self, signed: SignedReceipt):
        return lambda n: draw_rollouts(
            self.account,  # the account, not its key: no public-key derivation per draw
            self.facts.domain,
            signed.receipt,
            count=n,
            rate=self.rollout_rate,
            minimum=self.min_rollouts,
        )

    def find(self, signed: SignedReceipt, epoch: int, drawn=None) -> Finding | None:
        """The first failed check of `signed` (None: accepted). Bad input rejects this receipt, never the run."""
        try:
            finding, cost = audit_receipt(
                self.facts, signed, epoch=epoch, fetch=self.fetch, drawn=drawn or self._draw(signed),
                policy=self.policy,
            )  # fmt: skip
        except Exception as exc:  # network input we did not foresee: rule on it, keep validating the others
            return self._malformed(signed, epoch, exc)
        self._add_cost(cost)
        return finding

    def _add_cost(self, cost: AuditCost) -> None:
        for name in ("forward_passes", "forward_tokens", "records_checked_cheaply"):
            setattr(self.cost, name, getattr(self.cost, name) + getattr(cost, name))

    def _malformed(self, signed: SignedReceipt, epoch: int, exc: Exception) -> Finding:
        logger.warning(f"receipt of {signed.receipt.peer} epoch {epoch}: audit failed on its input: {exc!r}")
        return Finding(Kind.MALFORMED_RECORD, f"audit could not process the receipt's records: {exc!r}"[:300])

    def find_many(self, receipts: Sequence[SignedReceipt], epoch: int) -> list[Finding | None]:
        """`find` of every receipt, with the drawn records of all of them recomputed in shared forward passes.

        The same checks and rulings as `find` one by one (each receipt's own draw, first failed check, round
        check last); only the teacher-forced forward passes are batched across receipts that name the same
        checkpoint, so a validator pays the per-pass overhead once per batch instead of once per receipt."""
        findings: list[Finding | None] = [None] * len(receipts)
        pending: dict[int, object] = {}
        for i, signed in enumerate(receipts):
            cost = AuditCost()
            try:
                findings[i], waiting = prepare_audit(
                    self.facts, signed, epoch=epoch, fetch=self.fetch, drawn=self._draw(signed),
                    policy=self.policy, cost=cost,
                )  # fmt: skip
            except Exception as exc:  # as in `find`: bad input rejects this receipt only
                findings[i], waiting = self._malformed(signed, epoch, exc), None
            self._add_cost(cost)
            if waiting is not None:
                pending[i] = waiting
        if pending:
            try:
                ruled = dict(zip(pending, finish_audits(self.facts, list(pending.values()), self.policy), strict=True))
            except Exception:  # find which receipt the failure belongs to: finish them one at a time
                ruled = {}
                for i, waiting in pending.items():
                    try:
                        (ruled[i],) = finish_audits(self.facts, [waiting], self.policy)
                    except Exception as exc:
                        ruled[i] = self._malformed(receipts[i], epoch, exc)
            for i, finding in ruled.items():
                findings[i] = finding
        for i, signed in enumerate(receipts):
            if findings[i] is None:
                findings[i] = check_round(self.facts, signed)
        return findings

    def sign(self, signed: SignedReceipt, finding: Finding | None, epoch: int) -> SignedVerdict:
        """This validator's signed verdict on `signed` as published for `epoch`."""
        verdict = Verdict.of(signed.receipt.digest(self.facts.domain), signed.receipt, finding, epoch=epoch)
        return sign_verdict(verdict, self.account.key, self.facts.domain)

    def audit(self, signed: SignedReceipt, epoch: int) -> SignedVerdict:
        return self.sign(signed, self.find(signed, epoch), epoch)

    def audit_epoch(self, receipts: Sequence[SignedReceipt], epoch: int) -> list[SignedVerdict]:
        return [self.sign(r, f, epoch) for r, f in zip(receipts, self.find_many(receipts, epoch), strict=True)]

    def confirms(self, signed: SignedReceipt, finding: Finding, epoch: int) -> bool:
        """Re-run the audit with the cited record forced into the draw; True when the same kind of failure shows."""
        index = self._cited_index(signed, finding)
        drawn = (lambda n: [index]) if index is not None else (lambda n: [])
        mine = self.find(signed, epoch, drawn=drawn)
        return mine is not None and mine.kind == finding.kind

    def _cited_index(self, signed: SignedReceipt, finding: Finding) -> int | None:
        if finding.slot < 0:
            return None
        try:
            records = sorted((r for r, _ in self.fetch(signed)), key=lambda r: (r.slot, r.generation))
        except AttestationError:
            return None
        keys = [(r.slot, r.generation) for r in records]
        return keys.index((finding.slot, finding.generation)) if (finding.slot, finding.generation) in keys else None


# -- validating a run: reports, receipts from a directory or the swarm --------------------------------------------


def validate_epochs(validator: Validator, receipts_by_epoch: dict[int, list], others: list[dict] = ()) -> dict:
    """Audit every receipt of every epoch; JSON-ready verdicts and the forward-pass cost.

    `others` are other validators' reports: a finding of theirs on a receipt this validator accepted
    is re-checked (`Validator.confirms`) and, when reproduced, this validator signs it too.
    """
    verdicts = []
    for epoch, receipts in sorted(receipts_by_epoch.items()):
        for signed, found in zip(receipts, validator.find_many(receipts, epoch), strict=True):
            finding = found or confirmed_finding(validator, signed, epoch, others)
            verdicts.append(verdict_json(validator.sign(signed, finding, epoch), validator.facts.domain, signed))
    cost = vars(validator.cost)
    counts = {s.name: sum(v["status"] == s.name for v in verdicts) for s in Status}
    return {"validator": validator.address, "verdicts": verdicts, "counts": counts, "cost": dict(cost)}


def confirmed_finding(validator: Validator, signed, epoch: int, others) -> Finding | None:
    """The first of the other validators' findings on this receipt that this validator reproduces."""
    digest = "0x" + signed.receipt.digest(validator.facts.domain).hex()
    for report in others:
        for v in report.get("verdicts", []):
            if v.get("receipt") == digest and v.get("status") != Status.ACCEPTED.name:
                finding = Finding(Kind[v["kind"]], v["detail"], int(v["slot"]), int(v["generation"]))
                if validator.confirms(signed, finding, epoch):
                    return finding
    return None


def write_report(report: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def run_domain(spec, clients=None) -> dict:
    """The EIP-712 domain the run's receipts and verdicts are signed in: the ledger's on a chain, else the spec's."""
    from coordination.chain.eip712 import attest_domain
    from coordination.swarm.runspec import ChainSpec

    if clients is not None:
        return clients.ledger.domain().as_dict()
    return attest_domain(chain_id=(spec.chain or ChainSpec()).chain_id)


@contextlib.contextmanager
def receipt_source(spec, records_dir: Path | None, initial_peers: list[str] | None, epochs: list[int]):
    """({epoch: [SignedReceipt]}, record fetcher, dht or None) from a local directory or from the swarm's DHT."""
    if records_dir is not None:
        from coordination.attest.rollout_store import RolloutDirectory
        from coordination.chain.eip712 import run_key

        if not Path(records_dir).is_dir():  # a typo would otherwise audit nothing and sign an empty report
            raise ConfigError(
                f"--records-dir {records_dir} is not a directory: pass the folder the peers' receipts and records "
                "were published to (a peer's --rollouts-dir), or --initial-peers to fetch them from the swarm"
            )
        store = RolloutDirectory(records_dir)
        yield {e: store.receipts(run_key(spec.run_id).hex(), e) for e in epochs}, store.fetch, None
        return
    from coordination.attest.dht_receipts import fetch_receipts, protect
    from coordination.attest.p2p_serving import P2PRecordFetcher
    from coordination.swarm.dht_node import start_dht

    dht = start_dht(initial_peers=initial_peers, client_mode=True)
    try:
        protect(dht)  # check owner signatures of receipt (and epoch board) entries
        published = {e: fetch_receipts(dht, spec.run_id, e) for e in epochs}
        every = [p for ps in published.values() for p in ps]
        fetch = P2PRecordFetcher.from_published(dht, prefix=spec.run_id, published=every)
        yield {e: [p.signed for p in ps] for e, ps in published.items()}, fetch, dht
    finally:
        dht.shutdown()


@contextlib.contextmanager
def run_validator(
    spec,
    private_key: str,
    *,
    epochs: list[int],
    clients=None,
    records_dir: Path | None = None,
    initial_peers: list[str] | None = None,
    eval_dtype: str = "fp32",
    rollout_rate: float = 1.0,
):
    """(Validator, {epoch: [SignedReceipt]}) over the run's published records: a directory, or the swarm.

    From the swarm, every receipt is audited under its epoch's canonical checkpoint (the epoch board) and
    paid only if its gradient entered the round; checkpoints come from the local store, else from the swarm.
    """
    from coordination.swarm.epoch_board import EpochBoard

    with receipt_source(spec, records_dir, initial_peers, epochs) as (receipts, fetch, dht):
        board = EpochBoard(dht=dht, run_id=spec.run_id) if dht is not None else None
        domain = run_domain(spec, clients)
        facts = facts_for_run(spec, domain=domain, dht=dht, board=board, eval_dtype=eval_dtype)
        yield Validator(private_key=private_key, facts=facts, fetch=fetch, rollout_rate=rollout_rate), receipts
