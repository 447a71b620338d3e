"""Payouts: a period's units per peer, its Merkle root on chain, claim files, slashes, and each peer's status.

Units are completion tokens of accepted receipts. A peer with a FRAUD outcome anywhere in the period
forfeits the whole period; REJECTED receipts (replays, unavailable records, bad signatures) simply earn
nothing. Rows are `(address peer, uint256 units)`, ContributionLedger's leaf. A period's `payout` (token
base units, shared pro rata by units) is the `reward` field of the contract's `Period` message.

    table = contribution_table(outcomes)        # {peer: units}
    tree = contribution_tree(table)             # StandardMerkleTree; tree.root -> submitPeriod
    payout_shares(table, payout)                # exactly what claim() pays each peer

**On chain.** The aggregator (any validator) collects the validators' EIP-712 `Period` signatures over the
contribution root (`sign_contribution_period`, the ledger's domain), checks the set off-chain with the
contract's own rules *at the period's stake snapshot*, submits it with `ContributionLedger.submitPeriod`, and
returns one `ClaimTicket` per peer (`write_claim_files` writes them; `hivetune claim --claim-file` consumes one):

    s = period_settlement(run_key, period, first_epoch, last_epoch, table, payout, snapshot)
    tickets = settle_period(ledger, staking, s, table, signed, sender=aggregator)
    write_claim_files(tickets, "outputs/claims")
    slash_fraud(staking, outcome, accounts, attest_domain, bps=5_000, snapshot=s.snapshot, sender=aggregator)

**From files.** Each validator signs what the verdict reports rule; the aggregator submits:

    doc = sign_period_document(account=acct, reports=reports, clients=clients, run_key=rk, period=0,
                               first_epoch=0, last_epoch=9, payout=10**18, snapshot=t, slash_bps=5000,
                               recheck=my_recheck)                                   # one per validator, as JSON
    result = submit_period_documents(docs, clients=clients, sender=acct, claims_dir="outputs/claims")

Everything is weighed by validator stake at the period's `snapshot` (a past timestamp all validators
sign), never by signer count. A document holds the epoch range, the contribution table of the receipts
audited for epochs in that range (peers without the ledger's minimum bond at the snapshot left out), its
root, the validator's `Period` signature, and one `Slash` signature per peer with a FRAUD ruling: `slash_bps`
of whatever the peer holds (active + unbonding) when the slash executes, so every validator signs the same
message whatever the peer does with its stake. A validator passes `recheck(receipt, evidence) -> bool` (its
own re-run of a cited check; see `coordination.verify.rulings`) and so co-signs a FRAUD ruling only when the
evidence reproduces. The aggregator keeps the settlement backed by the most stake, pre-checks the quorum
off-chain, submits the period, writes claim files, then submits each slash that has a quorum.

**Status.** A peer's payouts, period by period: units from its claim files, state from the ledger.

    payout_rows("0xAbc...", "outputs/claims", ledger=clients.ledger)
    # [{"period": 0, "units": 120, "totalUnits": 480, "amount": 250, "state": "claimed"}, ...]

States: `claimed`; `claimable` (challenge window over, claim window open, not claimed); `pending`
(challenge window open); `expired` (claim window closed); `swept` (remainder returned to the pool);
`voided`; `unsettled` (the ledger has no such period); `unknown` (no ledger given).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from eth_utils import to_checksum_address

from coordination.chain.claims import ClaimTicket, tickets_for, write_claim_files
from coordination.chain.eip712 import (
    PeriodSettlement,
    QuorumRejected,
    order_by_signer,
    require_quorum_offchain,
    sign_period,
    sign_slash,
)
from coordination.chain.merkle import StandardMerkleTree
from coordination.errors import AttestationError, ChainError
from coordination.verify.rulings import ReceiptOutcome, Recheck, Status, aggregate_reports

logger = logging.getLogger(__name__)


# -- the contribution table: units per peer, its Merkle tree, exact shares ----------------------------------------


CONTRIBUTION_TYPES = ("address", "uint256")


def contribution_table(outcomes: Iterable[ReceiptOutcome]) -> dict[str, int]:
    """peer -> verified units (completion tokens) over the period's agreed outcomes, cheaters removed."""
    units: dict[str, int] = defaultdict(int)
    cheaters = set()
    seen = set()
    for outcome in outcomes:
        peer = to_checksum_address(outcome.peer)
        if outcome.status == Status.FRAUD:
            cheaters.add(peer)
        elif outcome.status == Status.ACCEPTED and (peer, outcome.epoch) not in seen:
            seen.add((peer, outcome.epoch))  # one paid receipt per peer and epoch
            units[peer] += outcome.receipt.receipt.completion_tokens
    return {p: u for p, u in sorted(units.items()) if p not in cheaters and u > 0}


def contribution_rows(table: dict[str, int]) -> list[tuple[str, int]]:
    return [(to_checksum_address(p), int(u)) for p, u in sorted(table.items())]


def contribution_tree(table: dict[str, int]) -> StandardMerkleTree:
    if not table:
        raise ValueError("no verified contributions in this period; there is nothing to settle")
    return StandardMerkleTree.of(contribution_rows(table), CONTRIBUTION_TYPES)


def payout_shares(table: dict[str, int], payout: int) -> dict[str, int]:
    """What ContributionLedger.claim pays of the period's `payout`: floor(payout * units / totalUnits) per peer."""
    total = sum(table.values())
    return {p: payout * u // total for p, u in table.items()}


# -- settling a period on chain, slashing a conclusive cheater ----------------------------------------------------


def period_settlement(
    run_key: bytes, period: int, first_epoch: int, last_epoch: int, table: dict[str, int], payout: int, snapshot: int
) -> PeriodSettlement:
    """The `Period` message of a contribution table: its root and its units' sum, bound together."""
    root = contribution_tree(table).root
    return PeriodSettlement(run_key, period, first_epoch, last_epoch, root, sum(table.values()), payout, snapshot)


def check_table_matches(settlement: PeriodSettlement, table: dict[str, int]) -> None:
    """The leaves must sum to `totalUnits` and hash to `root`; AttestationError otherwise."""
    if sum(table.values()) != settlement.total_units:
        raise AttestationError(
            f"table units sum to {sum(table.values())} but the period says totalUnits={settlement.total_units}"
        )
    if contribution_tree(table).root != bytes(settlement.root):
        raise AttestationError("the table does not hash to the period's root; the documents are corrupt")


def sign_contribution_period(account, domain, settlement: PeriodSettlement) -> tuple[str, bytes]:
    """One validator's (address, Period signature)."""
    return account.address, sign_period(account, domain, settlement)


def settle_period(
    ledger,
    staking,
    settlement: PeriodSettlement,
    table: dict[str, int],
    signed: Sequence[tuple[str, bytes]],
    *,
    sender,
) -> list[ClaimTicket]:
    """Order the signatures, pre-check them like the contract at the snapshot, submit; returns the tickets."""
    check_table_matches(settlement, table)
    signatures = order_by_signer(signed)
    require_quorum_offchain(
        ledger.period_digest(settlement),
        signatures,
        validator_stakes=staking.validator_stakes_at([a for a, _ in signed], settlement.snapshot),
        required=staking.required_quorum_stake_at(settlement.snapshot),
    )
    ledger.submit_period(settlement, signatures, sender=sender)
    tree = contribution_tree(table)
    return tickets_for(settlement, tree, chain_id=ledger.w3.eth.chain_id, ledger=ledger.address)


def load_claim_file(path) -> ClaimTicket:
    """Parse and check a claim file (its proof must lead to its root)."""
    return ClaimTicket.load(path)


def slash_fraud(
    staking, outcome: ReceiptOutcome, accounts, attest_domain: dict, *, bps: int, snapshot: int, sender
) -> bytes:
    """Slash `bps` of the FRAUD outcome's peer, signed by the accounts whose verdicts confirmed it."""
    evidence = outcome.evidence(attest_domain)
    confirmed = set(outcome.signers(attest_domain))
    signers = [a for a in accounts if a.address in confirmed]
    domain = staking.domain()
    signatures = order_by_signer(
        (a.address, sign_slash(a, domain, outcome.peer, bps, evidence, snapshot)) for a in signers
    )
    staking.slash(outcome.peer, bps, evidence, snapshot, signatures, sender=sender)
    return evidence


# -- settling a period from files: validators sign documents, the aggregator submits them -------------------------


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
    payout: int,
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
        for o in aggregate_reports(reports, attest, stakes=stakes, required=required, recheck=recheck)
        if first_epoch <= o.epoch <= last_epoch
    ]
    table = bonded_only(contribution_table(outcomes), clients, snapshot)
    s = period_settlement(run_key, period, first_epoch, last_epoch, table, payout, snapshot)
    return {
        "validator": account.address,
        "runId": "0x" + s.run_id.hex(),
        "period": period,
        "firstEpoch": first_epoch,
        "lastEpoch": last_epoch,
        "payout": payout,
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
        int(d["payout"]),  # the Period message calls it reward
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


# -- a peer's payouts, period by period ---------------------------------------------------------------------------


def period_state(ledger, ticket: ClaimTicket) -> str:
    if ledger is None:
        return "unknown"
    from coordination.chain.clock import chain_now

    info = ledger.get_period(ticket.run_key, ticket.period)
    if not info.exists:
        return "unsettled"
    if info.voided:
        return "voided"
    if ledger.is_claimed(ticket.run_key, ticket.period, ticket.peer):
        return "claimed"
    if info.swept:
        return "swept"
    now = chain_now(ledger.w3)
    if now < info.challenge_ends_at:
        return "pending"
    return "claimable" if now < info.challenge_ends_at + ledger.claim_window() else "expired"


def payout_rows(peer: str, claims_dir: str | Path, *, ledger=None) -> list[dict]:
    """One row per claim file of `peer` in `claims_dir`, oldest period first."""
    peer = to_checksum_address(peer)
    rows = []
    for path in sorted(Path(claims_dir).glob(f"{peer}-period*.json")):
        t = ClaimTicket.load(path)
        rows.append(
            {
                "period": t.period,
                "firstEpoch": t.first_epoch,
                "lastEpoch": t.last_epoch,
                "units": t.units,
                "totalUnits": t.total_units,
                "amount": t.amount,
                "state": period_state(ledger, t),
                "runId": "0x" + t.run_key.hex(),
                "file": str(path),
            }
        )
    return sorted(rows, key=lambda r: r["period"])
