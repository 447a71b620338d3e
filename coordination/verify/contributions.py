"""The contribution table of a reward period, and its OZ Merkle tree for ContributionLedger.

Units are completion tokens of accepted receipts. A peer with a FRAUD outcome anywhere in the
period forfeits the whole period; REJECTED receipts (replays, unavailable records, bad
signatures) simply earn nothing. Rows are `(address peer, uint256 units)`, the ledger's leaf.

    table = contribution_table(outcomes)        # {peer: units}
    tree = contribution_tree(table)             # StandardMerkleTree; tree.root -> submitPeriod
    payout(table, reward)                       # exactly what claim() pays each peer
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from eth_utils import to_checksum_address

from coordination.chain.merkle import StandardMerkleTree
from coordination.verify.reconcile import ReceiptOutcome
from coordination.verify.verdicts import Status

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


def payout(table: dict[str, int], reward: int) -> dict[str, int]:
    """What ContributionLedger.claim pays: floor(reward * units / totalUnits) per peer."""
    total = sum(table.values())
    return {p: reward * u // total for p, u in table.items()}
