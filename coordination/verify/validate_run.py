"""What `hivetune validate` does, as plain functions: build a run's facts, load policies, audit epochs.

    facts = facts_for_run(spec, domain=domain, store=CheckpointStore())
    report = validate_epochs(validator, receipts_by_epoch)     # {"verdicts": [...], "cost": {...}}

Policies: the receipt's checkpoint CID names the LoRA adapter the peer trained from; the
validator loads the run's base model (`spec.model.base`) and, unless the CID is the literal
`base`, the adapter resolved from the checkpoint store (fetched from peers if a DHT is given).
"""

from __future__ import annotations

import json
from pathlib import Path

from coordination.verify.run_facts import RunFacts
from coordination.verify.validator import Validator
from coordination.verify.verdicts import Finding, Kind, SignedVerdict, Status

BASE_CHECKPOINT = "base"  # a receipt trained from the bare base model (no adapter yet)


def policy_loader(spec, *, store=None, dht=None):
    """checkpoint CID -> (model, tokenizer), in eval mode."""

    def load(cid: str):
        from trainer.models import load_model_and_tokenizer

        model, tokenizer = load_model_and_tokenizer(spec.model.base)
        if cid != BASE_CHECKPOINT:
            from peft import PeftModel

            from coordination.checkpoints.resolve import resolve_adapter

            model = PeftModel.from_pretrained(model, str(resolve_adapter(cid, store, dht=dht, prefix=spec.run_id)))
        return model.eval(), tokenizer

    return load


def facts_for_run(spec, *, domain: dict, store=None, dht=None, **overrides) -> RunFacts:
    from trainer.tasks import get_task

    task = get_task(spec.task.name, **spec.task.params)
    return RunFacts.from_spec(
        spec, task=task, domain=domain, load_policy=policy_loader(spec, store=store, dht=dht), **overrides
    )


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
        for signed in receipts:
            finding = validator.find(signed, epoch) or confirmed_finding(validator, signed, epoch, others)
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
