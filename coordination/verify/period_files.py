"""Settling a period from files: each validator signs what the verdict reports rule; the aggregator submits.

    doc = sign_period_document(account=acct, reports=reports, clients=clients, run_key=rk, period=0,
                               first_epoch=0, last_epoch=9, reward=10**18, snapshot=t, slash_bps=5000,
                               recheck=my_recheck)                                   # one per validator, as JSON
    result = submit_period_documents(docs, clients=clients, sender=acct, claims_dir="outputs/claims")

Everything is weighed by validator stake at the period's `snapshot` (a past timestamp all validators
sign), never by signer count. A document holds the epoch range, the contribution table of the receipts
audited for epochs in that range (peers without the ledger's minimum bond at
the snapshot left out), its root, the validator's `Period` signature, and one `Slash`
signature per peer with a FRAUD ruling: `slash_bps` of whatever the peer holds (active + unbonding)
when the slash executes, so every validator signs the same message whatever the peer does with its stake.
A validator passes `recheck(receipt, evidence) -> bool` (its own re-run of a cited check; see
`coordination.verify.aggregate`) and so co-signs a FRAUD ruling only when the evidence reproduces.
The aggregator keeps the settlement backed by the most stake, pre-checks the quorum off-chain, submits
the period, writes claim files, then submits each slash that has a quorum.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from eth_utils import to_checksum_address

from coordination.chain.claims import write_claim_files
from coordination.chain.eip712 import (
    PeriodSettlement,
    QuorumRejected,
    order_by_signer,
    require_quorum_offchain,
    sign_period,
    sign_slash,
)
from coordination.errors import AttestationError, ChainError
from coordination.verify.aggregate import Recheck, rulings
from coordination.verify.contributions import contribution_table
from coordination.verify.settlement import period_settlement, settle_period
from coordination.verify.verdicts import Status

logger = logging.getLogger(__name__)
BPS = 10_000


def named_validators(reports) -> set[str]:
    return {to_checksum_address(v["validator"]) for r in reports for v in r.get("verdicts", [])}


def slash_entries(account, outcomes, clients, slash_bps: int, snapshot: int) -> list[dict]:
    """One signed slash per peer with a FRAUD ruling (its first such receipt in the period)."""
    domain, attest = clients.staking.domain(), clients.ledger.domain().as_dict()
    out, seen = [], set()
    for o in outcomes:
        if o.status != Status.FRAUD or o.peer in seen:
            continue
        seen.add(o.peer)
        evidence = o.evidence(attest)
        signature = sign_slash(account, domain, o.peer, slash_bps, evidence, snapshot)
        out.append(
            {
                "peer": o.peer,
                "bps": slash_bps,
                "evidence": "0x" + evidence.hex(),
                "kind": o.finding.kind.name,
                "snapshot": snapshot,
                "signature": "0x" + signature.hex(),
            }
        )
    return out


def sign_period_document(
    *,
    account,
    reports,
    clients,
    run_key: bytes,
    period: int,
    first_epoch: int,
    last_epoch: int,
    reward: int,
    snapshot: int,
    slash_bps: int = 5_000,
    recheck: Recheck | None = None,
) -> dict:
    """This validator's signed settlement of `period` (epochs first..last) from the verdict reports."""
    if not 0 < slash_bps <= BPS:
        raise ValueError(f"slash_bps={slash_bps} must be in (0, {BPS}]")
    if snapshot <= 0:
        raise ValueError("snapshot must be a past chain timestamp that every validator of the period uses")
    staking = clients.staking
    stakes = staking.validator_stakes_at(named_validators(reports), snapshot)
    required = staking.required_quorum_stake_at(snapshot)
    attest = clients.ledger.domain().as_dict()
    outcomes = [
        o
        for o in rulings(reports, attest, stakes=stakes, required=required, recheck=recheck)
        if first_epoch <= o.epoch <= last_epoch
    ]
    table = bonded_only(contribution_table(outcomes), clients, snapshot)
    s = period_settlement(run_key, period, first_epoch, last_epoch, table, reward, snapshot)
    return {
        "validator": account.address,
        "runId": "0x" + s.run_id.hex(),
        "period": period,
        "firstEpoch": first_epoch,
        "lastEpoch": last_epoch,
        "reward": reward,
        "snapshot": snapshot,
        "root": "0x" + s.root.hex(),
        "totalUnits": s.total_units,
        "table": table,
        "signature": "0x" + sign_period(account, clients.ledger.domain(), s).hex(),
        "slashes": slash_entries(account, outcomes, clients, slash_bps, snapshot),
    }


def bonded_only(table: dict[str, int], clients, snapshot: int) -> dict[str, int]:
    """The rows of peers that held the ledger's minimum bond at `snapshot` (the ledger pays no one else)."""
    need = max(1, clients.ledger.min_peer_bond())
    kept = {p: u for p, u in table.items() if clients.staking.stake_at(p, snapshot) >= need}
    for peer in set(table) - set(kept):
        logger.warning(f"{peer} held no bond of {need} at snapshot {snapshot}: left out of the period")
    return kept


def document_settlement(d: dict) -> PeriodSettlement:
    return PeriodSettlement(
        bytes.fromhex(d["runId"][2:]),
        int(d["period"]),
        int(d["firstEpoch"]),
        int(d["lastEpoch"]),
        bytes.fromhex(d["root"][2:]),
        int(d["totalUnits"]),
        int(d["reward"]),
        int(d["snapshot"]),
    )


def _agreed(documents, staking) -> tuple[dict, PeriodSettlement, list[tuple[str, bytes]]]:
    """The settlement that the most validator stake (at its snapshot) signed."""
    groups = defaultdict(list)
    for d in documents:
        groups[document_settlement(d)].append(d)

    def stake_of(s: PeriodSettlement) -> int:
        return sum(staking.validator_stakes_at({d["validator"] for d in groups[s]}, s.snapshot).values())

    best = max(groups, key=stake_of)
    for other in set(groups) - {best}:
        logger.warning(f"{len(groups[other])} validator(s) signed another settlement (root 0x{other.root.hex()})")
    docs = groups[best]
    return docs[0], best, [(d["validator"], bytes.fromhex(d["signature"][2:])) for d in docs]


def submit_slashes(documents, clients, *, sender) -> list[dict]:
    """Submit every slash that a validator quorum (by stake at its snapshot) signed; returns the ones sent."""
    groups = defaultdict(list)
    for d in documents:
        for s in d.get("slashes", []):
            key = (to_checksum_address(s["peer"]), int(s["bps"]), s["evidence"], int(s["snapshot"]))
            groups[key].append((d["validator"], bytes.fromhex(s["signature"][2:])))
    sent, staking = [], clients.staking
    for (peer, bps, evidence, snapshot), signed in groups.items():
        evidence_bytes = bytes.fromhex(evidence[2:])
        signatures = order_by_signer(signed)
        try:
            require_quorum_offchain(
                staking.slash_digest(peer, bps, evidence_bytes, snapshot),
                signatures,
                validator_stakes=staking.validator_stakes_at([a for a, _ in signed], snapshot),
                required=staking.required_quorum_stake_at(snapshot),
            )
            receipt = staking.slash(peer, bps, evidence_bytes, snapshot, signatures, sender=sender)
        except (QuorumRejected, ChainError) as exc:
            logger.warning(f"not slashing {peer}: {exc}")
            continue
        amount = staking.events("Slashed", receipt)[0]["amount"]
        sent.append({"peer": peer, "bps": bps, "amount": amount, "evidence": evidence})
    return sent


def submit_period_documents(documents, *, clients, sender, claims_dir) -> dict:
    """Submit the period most validator stake signed, write claim files, submit quorum-signed slashes."""
    if not documents:
        raise AttestationError("no signed period documents: collect `hivetune settle-sign` outputs from validators")
    doc, settlement, signed = _agreed(documents, clients.staking)
    table = {to_checksum_address(p): int(u) for p, u in doc["table"].items()}
    tickets = settle_period(clients.ledger, clients.staking, settlement, table, signed, sender=sender)
    paths = write_claim_files(tickets, claims_dir)
    slashed = submit_slashes([d for d in documents if document_settlement(d) == settlement], clients, sender=sender)
    return {
        "period": settlement.period,
        "firstEpoch": settlement.first_epoch,
        "lastEpoch": settlement.last_epoch,
        "root": doc["root"],
        "totalUnits": settlement.total_units,
        "claims": [str(p) for p in paths],
        "slashed": slashed,
        "signers": [a for a, _ in signed],
    }
