"""Contribution tables and payouts: exact integer shares, cheaters forfeit, one paid receipt per peer and epoch."""

from dataclasses import dataclass

from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from coordination.chain.merkle import leaf_hash, verify_proof
from coordination.verify.payout import contribution_table, contribution_tree, payout_shares
from coordination.verify.rulings import ReceiptOutcome, Status

PEERS = [Account.from_key(bytes([0x30] * 31 + [i + 1])).address for i in range(6)]


@dataclass
class FakeReceipt:  # only what contribution_table reads
    peer: str
    completion_tokens: int


@dataclass
class FakeSigned:
    receipt: FakeReceipt


def outcome(peer, tokens, status=Status.ACCEPTED, epoch=0):
    return ReceiptOutcome(FakeSigned(FakeReceipt(peer, tokens)), epoch, status, None)


def test_units_sum_accepted_tokens_and_fraud_forfeits_the_period():
    table = contribution_table(
        [
            outcome(PEERS[0], 10),
            outcome(PEERS[0], 5, epoch=1),
            outcome(PEERS[1], 7),
            outcome(PEERS[2], 9),
            outcome(PEERS[2], 3, Status.FRAUD, epoch=1),
            outcome(PEERS[3], 4, Status.REJECTED),
            outcome(PEERS[3], 6, epoch=1),
        ]
    )
    assert table == {PEERS[0]: 15, PEERS[1]: 7, PEERS[3]: 6}


def test_a_second_receipt_for_the_same_epoch_is_not_paid_twice():
    assert contribution_table([outcome(PEERS[0], 10), outcome(PEERS[0], 10)]) == {PEERS[0]: 10}


@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=6), st.integers(1, 10**24))
def test_payouts_are_floor_shares_that_never_exceed_the_reward(units, reward):
    table = dict(zip(PEERS, units, strict=False))
    paid = payout_shares(table, reward)
    total = sum(table.values())
    for peer, amount in paid.items():
        assert amount == reward * table[peer] // total
        assert amount * total <= reward * table[peer] < (amount + 1) * total
    assert reward - len(table) < sum(paid.values()) <= reward


@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=6))
def test_every_row_proves_against_the_contribution_root(units):
    table = dict(zip(PEERS, units, strict=False))
    tree = contribution_tree(table)
    for i, (peer, u) in enumerate(sorted(table.items())):
        assert verify_proof(tree.root, leaf_hash(("address", "uint256"), (peer, u)), tree.proof(i))
