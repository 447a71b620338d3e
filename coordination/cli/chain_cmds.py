"""CLI: local devnet and the staker's commands (stake, unstake, withdraw, claim).

    hivetune devnet                      # anvil + contracts + funded accounts; Ctrl-C stops it
    hivetune devnet --json               # one JSON line (rpc, contracts, accounts with keys), then stays up
    hivetune stake 1500 --key-file me.key   # whole tokens (decimals allowed: 0.5); me.key: 0x-hex key, chmod 600
    export HIVETUNE_KEY=0x...            # or the key in the environment instead of --key-file
    hivetune unstake 200 && hivetune withdraw
    hivetune claim --claim-file claims/0/0xabc.json

Every chain command takes --rpc (env HIVETUNE_RPC), --deployment (env HIVETUNE_DEPLOYMENT) and, to sign,
--key-file (or env HIVETUNE_KEY): the shared options of `coordination.cli.options`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from coordination.cli.options import (
    DEPLOYMENT_FILE,
    DeploymentOption,
    JsonOption,
    KeyFileOption,
    RpcOption,
    emit,
    open_signed_chain,
)
from coordination.errors import ConfigError


def parse_token_amount(text: str, decimals: int = 18) -> int:
    """'1.5' whole tokens -> base units; ConfigError on anything that is not a positive amount."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigError(f"amount {text!r} is not a number; give whole tokens, e.g. 100 or 0.5") from None
    units = value * (10**decimals)
    if value <= 0 or units != units.to_integral_value():
        raise ConfigError(f"amount {text!r} must be > 0 with at most {decimals} decimals")
    return int(units)


def format_tokens(units: int, decimals: int = 18) -> str:
    return f"{Decimal(units) / (10**decimals):f}"


def _stake_state(clients, address: str) -> dict:
    amount, release_at = clients.staking.pending_withdrawal(address)
    return {
        "account": address,
        "stake": clients.staking.stake_of(address),
        "pending": amount,
        "releaseAt": release_at,
        "votes": clients.staking.get_votes(address),
    }


def devnet(
    port: Annotated[int, typer.Option(help="loopback port for anvil (0 = any free port)")] = 8545,
    accounts: Annotated[int, typer.Option(help="dev accounts; account 0 deploys, the others get tokens")] = 6,
    fund: Annotated[str, typer.Option(help="tokens sent to each dev account")] = "100000",
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    as_json: JsonOption = False,
) -> None:
    """Start anvil, deploy all contracts, fund dev accounts, write deployment.json; stay up until Ctrl-C."""
    import signal
    import time

    from coordination.chain.devnet import DEVNET_PARAMS, Devnet

    net = Devnet.start(
        port=port or None,
        accounts=accounts,
        fund_each=parse_token_amount(fund),
        params=DEVNET_PARAMS,
        deployment_path=deployment,
    )
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops it as cleanly as Ctrl-C
    # and Ctrl-C always works: a process started in the background (`cmd &` in a script) or by a parent
    # that ignores SIGINT inherits SIG_IGN, and Python then installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, _interrupt)
    try:
        _print_devnet(net, deployment, as_json)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        net.stop()
        if not as_json:
            typer.echo("devnet stopped")


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _print_devnet(net, deployment: Path, as_json: bool) -> None:
    from dataclasses import asdict

    token = net.deployment.clients(net.w3).token
    accounts = [
        {"address": a.address, "key": "0x" + a.key.hex(), "tokens": token.balance_of(a.address)} for a in net.accounts
    ]
    payload = {
        "rpc": net.rpc_url,
        "anvilPid": net.node.process.pid,
        "deploymentFile": str(deployment),
        "deployment": asdict(net.deployment),
        "accounts": accounts,
    }
    if as_json:
        emit(True, payload, "")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"hivetune devnet at {net.rpc_url} (chain {net.deployment.chain_id})")
    for col in ("#", "account", "private key (dev only!)", "HIVE"):
        table.add_column(col, overflow="fold")
    for i, a in enumerate(accounts):
        table.add_row(str(i) + (" deployer" if i == 0 else ""), a["address"], a["key"], format_tokens(a["tokens"]))
    console.print(table)
    for name in ("token", "staking", "ledger", "timelock", "governor", "registry"):
        console.print(f"  {name:<9} {getattr(net.deployment, name)}", highlight=False)
    console.print(f"contracts written to [bold]{deployment}[/]; Ctrl-C stops the devnet")


def stake(
    amount: Annotated[str, typer.Argument(help="whole tokens to stake")],
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve and stake AMOUNT tokens (voting power follows your stake)."""
    _, clients, account = open_signed_chain(rpc, deployment, key_file)
    units = parse_token_amount(amount)
    if clients.token.allowance(account.address, clients.staking.address) < units:
        clients.token.approve(clients.staking.address, units, sender=account)
    clients.staking.stake(units, sender=account)
    state = _stake_state(clients, account.address)
    emit(as_json, state, f"staked {amount}; stake now {format_tokens(state['stake'])}")


def unstake(
    amount: Annotated[str, typer.Argument(help="whole tokens to unstake")],
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Start unbonding AMOUNT tokens; `hivetune withdraw` pays them out after the unbonding delay."""
    _, clients, account = open_signed_chain(rpc, deployment, key_file)
    clients.staking.request_unstake(parse_token_amount(amount), sender=account)
    state = _stake_state(clients, account.address)
    emit(as_json, state, f"unbonding {format_tokens(state['pending'])}; withdraw after timestamp {state['releaseAt']}")


def withdraw(
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pay out your unbonded stake."""
    _, clients, account = open_signed_chain(rpc, deployment, key_file)
    receipt = clients.staking.withdraw(sender=account)
    (event,) = clients.staking.events("Withdrawn", receipt)
    emit(
        as_json,
        {"account": account.address, "withdrawn": event["amount"]},
        f"withdrew {format_tokens(event['amount'])}",
    )


def register_validator(
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register your stake as a validator's (needs the minimum validator stake); it counts after activation."""
    _, clients, account = open_signed_chain(rpc, deployment, key_file)
    clients.staking.register_validator(sender=account)
    at = clients.staking.activates_at(account.address)
    emit(
        as_json,
        {"account": account.address, "validator": False, "activatesAt": at},
        f"{account.address} registered; run `hivetune activate-validator` after timestamp {at}",
    )


def activate_validator(
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Activate your validator registration once its activation delay has passed."""
    _, clients, account = open_signed_chain(rpc, deployment, key_file)
    clients.staking.activate_validator(account.address, sender=account)
    emit(as_json, {"account": account.address, "validator": True}, f"{account.address} is an active validator")


def sweep(
    period: Annotated[int, typer.Option(help="payout period to sweep")],
    run_id: Annotated[str, typer.Option(help="run id (the run config's CID) or 0x bytes32")],
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Return a period's unclaimed remainder to the ledger's pool once its claim window has closed."""
    _, clients, account = open_signed_chain(rpc, deployment, key_file)
    receipt = clients.ledger.sweep(run_id, period, sender=account)
    (event,) = clients.ledger.events("PeriodSweptToPool", receipt)
    emit(as_json, {"period": period, "returned": event["returnedToPool"]}, f"swept {event['returnedToPool']}")


def claim(
    claim_file: Annotated[
        Path, typer.Option("--claim-file", help="JSON from the aggregator: runId, period, peer, units, proof")
    ],
    rpc: RpcOption = None,
    deployment: DeploymentOption = DEPLOYMENT_FILE,
    key_file: KeyFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Claim a period's payout for the peer in CLAIM_FILE (any key may pay the gas; the peer is paid)."""
    from coordination.chain.claims import ClaimTicket

    ticket = ClaimTicket.load(claim_file)
    _, clients, account = open_signed_chain(rpc, deployment, key_file)
    receipt = clients.ledger.claim(
        ticket.run_id, ticket.period, ticket.peer, ticket.units, list(ticket.proof), sender=account
    )
    (event,) = clients.ledger.events("RewardClaimed", receipt)
    emit(
        as_json,
        {"peer": ticket.peer, "period": ticket.period, "units": ticket.units, "amount": event["amount"]},
        f"claimed {format_tokens(event['amount'])} for {ticket.peer} (period {ticket.period})",
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `hivetune` app."""
    app.command("devnet")(devnet)
    app.command("stake")(stake)
    app.command("unstake")(unstake)
    app.command("withdraw")(withdraw)
    app.command("register-validator")(register_validator)
    app.command("activate-validator")(activate_validator)
    app.command("sweep")(sweep)
    app.command("claim")(claim)
