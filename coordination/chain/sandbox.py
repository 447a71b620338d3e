"""An in-process chain (eth-tester + py-evm) with everything deployed, for tests and benchmarks.

    box = Sandbox.create(accounts=5, params=DeployParams(unbonding_delay=100))
    box.c.staking.stake(10, sender=box.accounts[1].address)
    snap = box.snapshot(); ...; box.revert(snap)

The accounts are fresh keys added to eth-tester as unlocked accounts (send with `.address`) that
can also sign EIP-712 messages (validators). Each gets ETH for gas and `fund_each` tokens. Needs
the dev extra (`eth-tester[py-evm]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from unittest.mock import ANY

from eth_account import Account
from eth_account.signers.local import LocalAccount

from coordination.chain.deploy import TOKEN, Clients, Deployment, DeployParams, deploy_all
from coordination.errors import ChainError

__all__ = ["ANY", "Sandbox", "activate_validators", "register_validators", "revert_of"]


@dataclass
class Sandbox:
    w3: object
    deployment: Deployment
    c: Clients
    deployer: str
    accounts: list[LocalAccount]

    @classmethod
    def create(cls, *, accounts: int = 4, fund_each: int = 10_000 * TOKEN, params: DeployParams | None = None):
        from web3 import EthereumTesterProvider, Web3

        provider = EthereumTesterProvider()
        w3 = Web3(provider)
        deployer = w3.eth.accounts[0]
        w3.eth.default_account = deployer  # calls come from a funded account (eth-tester checks gas funds)
        deployment = deploy_all(w3, deployer, params)
        clients = deployment.clients(w3)
        keys = [Account.from_key(bytes([0x42] * 31 + [i + 1])) for i in range(accounts)]
        for account in keys:
            provider.ethereum_tester.add_account(account.key.hex())
            w3.eth.send_transaction({"from": deployer, "to": account.address, "value": 10**21})
            if fund_each:
                clients.token.transfer(account.address, fund_each, sender=deployer)
        return cls(w3, deployment, clients, deployer, keys)

    def snapshot(self) -> int:
        return self.w3.testing.snapshot()

    def revert(self, snapshot_id: int) -> None:
        self.w3.testing.revert(snapshot_id)

    def approve_and_stake(self, account: LocalAccount | str, amount: int):
        address = account if isinstance(account, str) else account.address
        self.c.token.approve(self.c.staking.address, amount, sender=address)
        return self.c.staking.stake(amount, sender=address)


def register_validators(box: Sandbox, stakes: dict[LocalAccount, int], *, activate: bool = True) -> None:
    """Stake and register each account as a validator; then wait out the activation delay and activate them."""
    for account, amount in stakes.items():
        box.approve_and_stake(account, amount)
        box.c.staking.register_validator(sender=account.address)
    if activate:
        activate_validators(box.w3, box.c.staking, [a.address for a in stakes], sender=box.deployer)


def activate_validators(w3, staking, addresses, *, sender) -> None:
    """Move time past the activation delay (dev chains) and activate each registered validator."""
    from coordination.chain.clock import advance_time

    advance_time(w3, staking.param("activationDelay") + 1)
    for address in addresses:
        staking.activate_validator(address, sender=sender)
    advance_time(w3, 1)  # a snapshot must lie in the past: let the activation's second go by


def revert_of(call, *args, **kwargs) -> tuple[str, tuple]:
    """Run `call(*args, **kwargs)`; return the custom error it reverted with, as `(name, args)`, or raise
    AssertionError if it succeeded. Compare it whole, so the test states the exact error (`ANY` matches any
    one argument):

        assert revert_of(lambda: staking.stake(0, sender=user)) == ("ZeroAmount", ())
    """
    try:
        call(*args, **kwargs)
    except ChainError as exc:
        return exc.error_name, tuple(exc.error_args)
    raise AssertionError("expected a revert, but the call succeeded")
