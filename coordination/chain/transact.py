"""Sending transactions and making calls, with gas estimated and failures decoded.

A sender is either an address the node holds unlocked (eth-tester, anvil's dev accounts) or an
eth-account `LocalAccount` (from `--key-file` or $HIVETUNE_KEY), which signs locally. Gas is always
estimated by the node (`estimate_gas`, plus a safety margin), never hard-coded. On the in-process
eth-tester chain, whose `estimate_gas` binary-searches (~12 EVM runs per transaction), a dry-run
`eth_call` (which surfaces the revert data) plus the pending block's gas limit is used instead: gas
*used* is identical.

    receipt = send(w3, staking.functions.stake(10), sender=account, action="stake")
    value = call(staking.functions.stakeOf(addr), action="stakeOf")
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from coordination.chain.revert import chain_errors
from coordination.errors import ChainError

Sender = str | LocalAccount
GAS_MARGIN = 1.2
# Stake, votes and totals are timestamp-keyed checkpoints: estimated in the second of the previous transaction
# they update slots in place (~5k gas each), mined a second later each pushes a fresh slot (~22k): an unstake
# can need three more fresh slots than its estimate (CI: an unstake on anvil ran out of gas). Unused gas is
# not charged.
GAS_HEADROOM = 100_000
ZERO_ADDRESS = "0x" + "0" * 40
RECEIPT_TIMEOUT_S = 60


def sender_address(sender: Sender) -> str:
    return sender.address if isinstance(sender, LocalAccount) else sender


def _rpc_of(w3) -> str | None:
    return getattr(w3.provider, "endpoint_uri", None)


def is_in_process(w3) -> bool:
    """True for web3's EthereumTesterProvider (py-evm in this process)."""
    from web3.providers.eth_tester import EthereumTesterProvider

    return isinstance(w3.provider, EthereumTesterProvider)


def _gas_for(w3, fn, tx: dict) -> int:
    if is_in_process(w3):
        if not hasattr(fn, "call"):  # a constructor (rare): estimated
            return int(fn.estimate_gas(tx) * GAS_MARGIN)
        fn.call(tx, block_identifier="pending")  # raises with the revert data; the pending block is where it runs
        return w3.eth.get_block("pending")["gasLimit"]
    # estimated on the pending block (its timestamp is the one the transaction will see), plus headroom for
    # state that changes between estimate and inclusion (checkpoints in a new second cost fresh slots: GAS_HEADROOM)
    return int(fn.estimate_gas(tx, block_identifier="pending") * GAS_MARGIN) + GAS_HEADROOM


def send(w3, fn, *, sender: Sender, action: str, value: int = 0):
    """Estimate gas, sign (if a LocalAccount), send, wait; returns the receipt or raises ChainError."""
    address = sender_address(sender)
    with chain_errors(action, _rpc_of(w3)):
        tx = {"from": address, "value": value}
        tx["gas"] = _gas_for(w3, fn, tx)
        if isinstance(sender, LocalAccount):
            tx = fn.build_transaction({**tx, "nonce": w3.eth.get_transaction_count(address, "pending")})
            tx_hash = w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction)
        else:
            tx_hash = fn.transact(tx)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
    if receipt["status"] != 1:
        raise ChainError(f"{action} failed: transaction {tx_hash.hex()} was mined but reverted; retry or check state")
    return receipt


def _default_caller(w3) -> str:
    default = w3.eth.default_account
    return default if isinstance(default, str) and default else ZERO_ADDRESS


def call(w3, fn, *, action: str, sender: Sender | None = None):
    """A read-only call; reverts and an unreachable node become ChainError."""
    # an explicit `from` also spares eth-tester's middleware listing (and checksumming) all its accounts
    with chain_errors(action, _rpc_of(w3)):
        return fn.call({"from": sender_address(sender) if sender else _default_caller(w3)})
