"""Settle a reward period on chain and hand each peer a claim ticket; slash conclusive cheaters.

The aggregator (any validator) collects the validators' EIP-712 `Period` signatures over the
contribution root (`sign_contribution_period`, the ledger's domain), checks the set off-chain with
the contract's own rules *at the period's stake snapshot*, submits it with
`ContributionLedger.submitPeriod`, and returns one `ClaimTicket` per peer (`write_claim_files` writes
them; `hivetune claim --claim-file` consumes one):

    s = period_settlement(run_key, period, first_epoch, last_epoch, table, reward, snapshot)
    tickets = settle_period(ledger, staking, s, table, signed, sender=aggregator)
    write_claim_files(tickets, "outputs/claims")
    slash_fraud(staking, outcome, accounts, attest_domain, bps=5_000, snapshot=s.snapshot, sender=aggregator)
"""

from __future__ import annotations

from collections.abc import Sequence

from coordination.chain.claims import BadClaimFile, ClaimTicket, tickets_for, write_claim_files  # noqa: F401
from coordination.chain.eip712 import (
    PeriodSettlement,
    order_by_signer,
    require_quorum_offchain,
    sign_period,
    sign_slash,
)
from coordination.errors import AttestationError
from coordination.verify.contributions import contribution_tree
from coordination.verify.reconcile import ReceiptOutcome


def period_settlement(
    run_key: bytes, period: int, first_epoch: int, last_epoch: int, table: dict[str, int], reward: int, snapshot: int
) -> PeriodSettlement:
    """The `Period` message of a contribution table: its root and its units' sum, bound together."""
    root = contribution_tree(table).root
    return PeriodSettlement(run_key, period, first_epoch, last_epoch, root, sum(table.values()), reward, snapshot)


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
