"""What `hivetune validate` does, as plain functions: build a run's facts, load policies, audit epochs.

    facts = facts_for_run(spec, domain=domain, store=CheckpointStore(), board=EpochBoard(dht=dht, run_id=...))
    report = validate_epochs(validator, receipts_by_epoch)     # {"verdicts": [...], "cost": {...}}

    with run_validator(spec, key, records_dir=Path("records"), epochs=[0, 1]) as (validator, receipts):
        report = validate_epochs(validator, receipts)          # the same, over published records

Checks against the run, not the peer: with the swarm's epoch board, every receipt is audited under the
canonical checkpoint of its epoch (`board.canonical(epoch).cid`; a receipt naming another checkpoint
is WRONG_CHECKPOINT) and paid only when its committed gradient contribution is a member of the
canonical round that ended the epoch (`board.round_of(epoch + 1)`: same address, same sha2-256;
else NOT_IN_ROUND). Policies come from one `PolicyPool` (one base model, adapters through a bounded
LRU, adapters whose config differs from the spec refused).
"""

from __future__ import annotations

import contextlib
import json
import logging
from functools import lru_cache
from pathlib import Path

from coordination.verify.policy_pool import BASE_CHECKPOINT, PolicyPool
from coordination.verify.run_facts import EVAL_TOLERANCES, RunFacts
from coordination.verify.validator import Validator
from coordination.verify.verdicts import Finding, Kind, SignedVerdict, Status

logger = logging.getLogger(__name__)
NO_CANONICAL = "<no canonical checkpoint>"  # what a receipt is compared to when the board has none for its epoch
__all__ = [
    "BASE_CHECKPOINT",
    "NO_CANONICAL",
    "board_checks",
    "facts_for_run",
    "receipt_source",
    "run_domain",
    "run_validator",
    "validate_epochs",
]


def board_checks(board) -> dict:
    """`checkpoint_of_epoch` and `entered_round` for RunFacts, read (once per epoch) from an EpochBoard."""
    from coordination.attest.receipts import NO_CONTRIBUTION, contribution_digest

    @lru_cache(maxsize=256)
    def canonical(epoch: int) -> str:
        try:
            found = board.canonical(epoch)
        except Exception as exc:  # DHT input we could not read: no canonical checkpoint for this epoch
            logger.warning(f"epoch {epoch}: reading the canonical checkpoint failed: {exc!r}")
            found = None
        return found.cid if found is not None else NO_CANONICAL

    @lru_cache(maxsize=256)
    def members(epoch: int) -> frozenset:
        try:
            found = board.round_of(epoch + 1)
        except Exception as exc:  # DHT input we could not read: nobody provably entered that round
            logger.warning(f"epoch {epoch}: reading the round failed: {exc!r}")
            found = None
        out = set()
        for m in (found or {}).get("members", []):
            try:
                if m.get("contribution") is not None:  # a member without a contribution CID vouches for nothing
                    out.add((str(m.get("address")).lower(), contribution_digest(m.get("contribution"))))
            except (ValueError, TypeError, AttributeError):
                continue  # an announcer's malformed member entry counts for nobody
        return frozenset(out)

    def entered(epoch: int, peer: str, contribution: bytes) -> bool:
        return bytes(contribution) != NO_CONTRIBUTION and (peer.lower(), bytes(contribution)) in members(epoch)

    return {"checkpoint_of_epoch": canonical, "entered_round": entered}


def facts_for_run(spec, *, domain: dict, store=None, dht=None, board=None, max_adapters: int = 4,
                  eval_dtype: str = "fp32", **overrides) -> RunFacts:  # fmt: skip
    """The run's facts; with `board` (an EpochBoard) receipts are checked against the run's canonical epochs.

    `eval_dtype` (fp32 | bf16) is what the validator recomputes in; its calibrated tolerances come with it."""
    from trainer.tasks import get_task

    if eval_dtype not in EVAL_TOLERANCES:
        raise ValueError(f"eval_dtype={eval_dtype!r}: use one of {sorted(EVAL_TOLERANCES)}")
    task = get_task(spec.task.name, **spec.task.params)
    pool = overrides.pop("load_policy", None) or PolicyPool(
        spec, store=store, dht=dht, max_adapters=max_adapters, dtype=eval_dtype
    )
    cdf, milli = EVAL_TOLERANCES[eval_dtype]
    checks = board_checks(board) if board is not None else {}
    fields = {"cdf_tolerance": cdf, "logprob_tolerance_milli": milli, **checks, **model_limits(spec), **overrides}
    return RunFacts.from_spec(spec, task=task, domain=domain, load_policy=pool, **fields)


def model_limits(spec) -> dict:
    """EOS ids, vocabulary size and prompt rendering of the run's base model (cheap: tokenizer + config)."""
    from transformers import AutoConfig

    from trainer.models import load_tokenizer, resolve_model_path
    from trainer.prompts import render_prompt
    from trainer.tasks import get_task

    try:
        tokenizer = load_tokenizer(spec.model.base)
        vocab = AutoConfig.from_pretrained(resolve_model_path(spec.model.base)).get_text_config().vocab_size
    except Exception as exc:  # the drawn checks fall back to the policy's own tokenizer and embeddings
        logger.warning(
            f"could not read the base model's EOS / vocabulary ({exc}); length checks only on drawn records"
        )
        return {}
    task = get_task(spec.task.name, **spec.task.params)
    return {
        "eos_token_ids": eos_ids(tokenizer, spec.model.base),
        "vocab_size": int(vocab),
        "prompt_of": lambda sample: render_prompt(task, sample, tokenizer),  # as peers render it
    }


def eos_ids(tokenizer, base: str) -> tuple[int, ...]:
    """The ids TRL stops generation at: the tokenizer's EOS plus the generation config's (as GRPOTrainer does)."""
    from transformers import GenerationConfig

    from trainer.models import resolve_model_path

    ids = [int(tokenizer.eos_token_id)]
    try:
        extra = GenerationConfig.from_pretrained(resolve_model_path(base)).eos_token_id
    except OSError:
        extra = None
    for t in [extra] if isinstance(extra, int) else list(extra or []):
        if int(t) not in ids:
            ids.append(int(t))
    return tuple(ids)


def verdict_json(signed: SignedVerdict, domain: dict, receipt=None) -> dict:
    """A verdict for the report: what was ruled, the receipt it rules on (for aggregation), the signature."""
    v = signed.verdict
    return {
        "receipt_json": receipt.to_json() if receipt is not None else None,
        "epoch": v.epoch,
        "peer": v.peer,
        "receipt": "0x" + v.receipt.hex(),
        "status": v.status.name,
        "kind": v.kind.name,
        "evidence": "0x" + v.evidence.hex(),
        "detail": v.finding.detail if v.finding else "",
        "slot": v.finding.slot if v.finding else -1,
        "generation": v.finding.generation if v.finding else -1,
        "validator": signed.signer(domain),
        "signature": "0x" + signed.signature.hex(),
    }


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
    from coordination.attest.typed_data import attest_domain
    from coordination.swarm.runspec import ChainSpec

    if clients is not None:
        return clients.ledger.domain().as_dict()
    return attest_domain(chain_id=(spec.chain or ChainSpec()).chain_id)


@contextlib.contextmanager
def receipt_source(spec, records_dir: Path | None, initial_peers: list[str] | None, epochs: list[int]):
    """({epoch: [SignedReceipt]}, record fetcher, dht or None) from a local directory or from the swarm's DHT."""
    if records_dir is not None:
        from coordination.attest.rollout_store import RolloutDirectory
        from coordination.chain.signing import run_key

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
