"""Sending transactions and making calls, with gas estimated and failures decoded.

A sender is either an address the node holds unlocked (eth-tester, anvil's dev accounts) or an
eth-account `LocalAccount` (a `--key`), which signs locally. Gas is always estimated by the node
(`estimate_gas`, plus a safety margin), never hard-coded.

    receipt = send(w3, staking.functions.stake(10), sender=account, action="stake")
    value = call(staking.functions.stakeOf(addr), action="stakeOf")
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from coordination.chain.revert import chain_errors
from coordination.errors import ChainError

Sender = str | LocalAccount
GAS_MARGIN = 1.2
RECEIPT_TIMEOUT_S = 60


def sender_address(sender: Sender) -> str:
    return sender.address if isinstance(sender, LocalAccount) else sender


def _rpc_of(w3) -> str | None:
    return getattr(w3.provider, "endpoint_uri", None)


def send(w3, fn, *, sender: Sender, action: str, value: int = 0):
    """Estimate, sign (if a LocalAccount), send, wait; returns the receipt or raises ChainError."""
    address = sender_address(sender)
    with chain_errors(action, _rpc_of(w3)):
        tx = {"from": address, "value": value}
        tx["gas"] = int(fn.estimate_gas(tx) * GAS_MARGIN)
        if isinstance(sender, LocalAccount):
            tx = fn.build_transaction({**tx, "nonce": w3.eth.get_transaction_count(address, "pending")})
            tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        else:
            tx_hash = fn.transact(tx)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
    if receipt["status"] != 1:
        raise ChainError(f"{action} failed: transaction {tx_hash.hex()} was mined but reverted; retry or check state")
    return receipt


def call(w3, fn, *, action: str, sender: Sender | None = None):
    """A read-only call; reverts and an unreachable node become ChainError."""
    with chain_errors(action, _rpc_of(w3)):
        return fn.call({"from": sender_address(sender)} if sender else {})
