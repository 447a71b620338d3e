"""Settling a period from files: each validator signs what the verdict reports rule; the aggregator submits.

    doc = sign_period_document(account=acct, reports=reports, clients=clients, run_key=rk, period=0,
                               reward=10**18, quorum=2, slash_bps=5000)          # one per validator, as JSON
    result = submit_period_documents(docs, clients=clients, sender=acct, claims_dir="outputs/claims")

A document holds the contribution table, its root, the validator's `Period` signature and one
`Slash` signature per peer with a FRAUD ruling (amount = slash_bps of its stake at signing time).
Every validator derives the same table from the same reports, so their signatures agree; the
aggregator keeps the root most signers agree on, pre-checks the quorum off-chain, submits the
period, writes claim files, then submits each slash that has a quorum.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from eth_utils import to_checksum_address

from coordination.chain.signing import order_by_signer, sign_period, sign_slash
from coordination.errors import AttestationError
from coordination.verify.aggregate import rulings
from coordination.verify.contributions import contribution_table, contribution_tree
from coordination.verify.quorum import QuorumRejected, require_quorum_offchain
from coordination.verify.settlement import settle_period, validator_stakes, write_claim_files
from coordination.verify.verdicts import Status

logger = logging.getLogger(__name__)
BPS = 10_000


def registered_validators(staking, reports) -> set[str]:
    """Validators named in the reports that the Staking contract has registered."""
    named = {to_checksum_address(v["validator"]) for r in reports for v in r.get("verdicts", [])}
    return {a for a in named if staking.is_validator(a)}


def slash_entries(account, outcomes, clients, slash_bps: int) -> list[dict]:
    domain, attest = clients.staking.domain(), clients.ledger.domain().as_dict()
    out, seen = [], set()
    for o in outcomes:
        if o.status != Status.FRAUD or o.peer in seen:
            continue
        seen.add(o.peer)
        amount = clients.staking.stake_of(o.peer) * slash_bps // BPS
        if amount:
            evidence = o.evidence(attest)
            out.append(
                {
                    "peer": o.peer,
                    "amount": amount,
                    "evidence": "0x" + evidence.hex(),
                    "kind": o.finding.kind.name,
                    "signature": "0x" + sign_slash(account, domain, o.peer, amount, evidence).hex(),
                }
            )
    return out


def sign_period_document(
    *, account, reports, clients, run_key: bytes, period: int, reward: int, quorum: int, slash_bps: int = 5_000
) -> dict:
    """This validator's signed settlement of `period` from the verdict reports."""
    attest = clients.ledger.domain().as_dict()
    outcomes = rulings(reports, attest, validators=registered_validators(clients.staking, reports), quorum=quorum)
    table = contribution_table(outcomes)
    root = contribution_tree(table).root
    signature = sign_period(account, clients.ledger.domain(), run_key, period, root, sum(table.values()), reward)
    return {
        "validator": account.address,
        "runId": "0x" + run_key.hex(),
        "period": period,
        "reward": reward,
        "root": "0x" + root.hex(),
        "totalUnits": sum(table.values()),
        "table": table,
        "signature": "0x" + signature.hex(),
        "slashes": slash_entries(account, outcomes, clients, slash_bps),
    }


def _agreed(documents) -> tuple[dict, list[tuple[str, bytes]]]:
    by_root = defaultdict(list)
    for d in documents:
        by_root[(d["runId"], d["period"], d["root"], d["reward"])].append(d)
    key = max(by_root, key=lambda k: len(by_root[k]))
    for other in set(by_root) - {key}:
        logger.warning(f"{len(by_root[other])} validator(s) signed another root {other[2]}; ignoring them")
    docs = by_root[key]
    return docs[0], [(d["validator"], bytes.fromhex(d["signature"][2:])) for d in docs]


def submit_slashes(documents, clients, *, sender) -> list[dict]:
    """Submit every slash that a validator quorum signed; returns the ones sent."""
    groups = defaultdict(list)
    for d in documents:
        for s in d.get("slashes", []):
            groups[(s["peer"], int(s["amount"]), s["evidence"])].append(
                (d["validator"], bytes.fromhex(s["signature"][2:]))
            )
    sent, staking = [], clients.staking
    for (peer, amount, evidence), signed in groups.items():
        evidence_bytes = bytes.fromhex(evidence[2:])
        signatures = order_by_signer(signed)
        try:
            require_quorum_offchain(
                staking.slash_digest(peer, amount, evidence_bytes),
                signatures,
                validator_stakes=validator_stakes(staking, [a for a, _ in signed]),
                required=staking.required_quorum_stake(),
            )
        except QuorumRejected as exc:
            logger.warning(f"not slashing {peer}: {exc}")
            continue
        staking.slash(peer, amount, evidence_bytes, signatures, sender=sender)
        sent.append({"peer": peer, "amount": amount, "evidence": evidence})
    return sent


def submit_period_documents(documents, *, clients, sender, claims_dir) -> dict:
    """Submit the period most validators signed, write claim files, submit quorum-signed slashes."""
    if not documents:
        raise AttestationError("no signed period documents: collect `hivetune settle-sign` outputs from validators")
    doc, signed = _agreed(documents)
    table = {to_checksum_address(p): int(u) for p, u in doc["table"].items()}
    if "0x" + contribution_tree(table).root.hex() != doc["root"]:
        raise AttestationError("the signed table does not hash to the signed root; the documents are corrupt")
    run_key = bytes.fromhex(doc["runId"][2:])
    settled = settle_period(
        clients.ledger, clients.staking, run_key, int(doc["period"]), table, int(doc["reward"]), signed, sender=sender
    )
    paths = write_claim_files(settled, claims_dir)
    slashed = submit_slashes([d for d in documents if d["root"] == doc["root"]], clients, sender=sender)
    return {
        "period": settled.period,
        "root": doc["root"],
        "totalUnits": settled.total_units,
        "claims": [str(p) for p in paths],
        "slashed": slashed,
        "signers": [a for a, _ in signed],
    }
