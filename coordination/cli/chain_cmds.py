"""CLI: local devnet and the staker's commands (stake, unstake, withdraw, claim).

    hivetune devnet                      # anvil + contracts + funded accounts; Ctrl-C stops it
    hivetune devnet --json               # one JSON line (rpc, contracts, accounts with keys), then stays up
    export HIVETUNE_KEY=0x...            # or pass --key on each command
    hivetune stake 1500                  # whole tokens (decimals allowed: 0.5)
    hivetune unstake 200 && hivetune withdraw
    hivetune claim --claim-file claims/0/0xabc.json

Every chain command takes --rpc (env HIVETUNE_RPC) and --deployment (env HIVETUNE_DEPLOYMENT).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import typer

from coordination.errors import ConfigError

RPC = typer.Option("http://127.0.0.1:8545", "--rpc", envvar="HIVETUNE_RPC", help="JSON-RPC URL of the chain")
DEPLOYMENT = typer.Option(
    Path("deployment.json"),
    "--deployment",
    envvar="HIVETUNE_DEPLOYMENT",
    help="deployment.json written by `hivetune devnet` (contract addresses)",
)
KEY = typer.Option(None, "--key", envvar="HIVETUNE_KEY", help="0x private key that signs (default: $HIVETUNE_KEY)")
CLAIM_FILE = typer.Option(..., "--claim-file", help="JSON from the aggregator: runId, period, peer, units, proof")
JSON_OUT = typer.Option(False, "--json", help="print one JSON object instead of text")


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


def _emit(as_json: bool, payload: dict, text: str) -> None:
    typer.echo(json.dumps(payload) if as_json else text)


def _open(rpc: str, deployment: Path, key: str | None):
    from coordination.chain.connect import account_from_key, connect

    account = account_from_key(key)
    w3, _, clients = connect(rpc, deployment)
    return w3, clients, account


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
    port: int = typer.Option(8545, help="loopback port for anvil (0 = any free port)"),
    accounts: int = typer.Option(6, help="dev accounts; account 0 deploys, the others get tokens"),
    fund: str = typer.Option("100000", help="tokens sent to each dev account"),
    deployment: Path = DEPLOYMENT,
    as_json: bool = JSON_OUT,
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
        typer.echo(json.dumps(payload), nl=True)
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
    amount: str = typer.Argument(..., help="whole tokens to stake"),
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Approve and stake AMOUNT tokens (voting power follows your stake)."""
    _, clients, account = _open(rpc, deployment, key)
    units = parse_token_amount(amount)
    if clients.token.allowance(account.address, clients.staking.address) < units:
        clients.token.approve(clients.staking.address, units, sender=account)
    clients.staking.stake(units, sender=account)
    state = _stake_state(clients, account.address)
    _emit(as_json, state, f"staked {amount}; stake now {format_tokens(state['stake'])}")


def unstake(
    amount: str = typer.Argument(..., help="whole tokens to unstake"),
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Start unbonding AMOUNT tokens; `hivetune withdraw` pays them out after the unbonding delay."""
    _, clients, account = _open(rpc, deployment, key)
    clients.staking.request_unstake(parse_token_amount(amount), sender=account)
    state = _stake_state(clients, account.address)
    _emit(
        as_json, state, f"unbonding {format_tokens(state['pending'])}; withdraw after timestamp {state['releaseAt']}"
    )


def withdraw(rpc: str = RPC, deployment: Path = DEPLOYMENT, key: str = KEY, as_json: bool = JSON_OUT) -> None:
    """Pay out your unbonded stake."""
    _, clients, account = _open(rpc, deployment, key)
    receipt = clients.staking.withdraw(sender=account)
    (event,) = clients.staking.events("Withdrawn", receipt)
    _emit(
        as_json,
        {"account": account.address, "withdrawn": event["amount"]},
        f"withdrew {format_tokens(event['amount'])}",
    )


def register_validator(
    rpc: str = RPC, deployment: Path = DEPLOYMENT, key: str = KEY, as_json: bool = JSON_OUT
) -> None:
    """Register your stake as a validator's (needs the minimum validator stake); it counts after activation."""
    _, clients, account = _open(rpc, deployment, key)
    clients.staking.register_validator(sender=account)
    at = clients.staking.activates_at(account.address)
    _emit(
        as_json,
        {"account": account.address, "validator": False, "activatesAt": at},
        f"{account.address} registered; run `hivetune activate-validator` after timestamp {at}",
    )


def activate_validator(
    rpc: str = RPC, deployment: Path = DEPLOYMENT, key: str = KEY, as_json: bool = JSON_OUT
) -> None:
    """Activate your validator registration once its activation delay has passed."""
    _, clients, account = _open(rpc, deployment, key)
    clients.staking.activate_validator(account.address, sender=account)
    _emit(as_json, {"account": account.address, "validator": True}, f"{account.address} is an active validator")


def sweep(
    period: int = typer.Option(..., help="reward period to sweep"),
    run_id: str = typer.Option(..., help="run id (the run config's CID) or 0x bytes32"),
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Return a period's unclaimed remainder to the reward pool once its claim window has closed."""
    _, clients, account = _open(rpc, deployment, key)
    receipt = clients.ledger.sweep(run_id, period, sender=account)
    (event,) = clients.ledger.events("PeriodSweptToPool", receipt)
    _emit(as_json, {"period": period, "returned": event["returnedToPool"]}, f"swept {event['returnedToPool']}")


def claim(
    claim_file: Path = CLAIM_FILE,
    rpc: str = RPC,
    deployment: Path = DEPLOYMENT,
    key: str = KEY,
    as_json: bool = JSON_OUT,
) -> None:
    """Claim a period's reward for the peer in CLAIM_FILE (any key may pay the gas; the peer is paid)."""
    from coordination.chain.claims import ClaimTicket

    ticket = ClaimTicket.load(claim_file)
    _, clients, account = _open(rpc, deployment, key)
    receipt = clients.ledger.claim(
        ticket.run_id, ticket.period, ticket.peer, ticket.units, list(ticket.proof), sender=account
    )
    (event,) = clients.ledger.events("RewardClaimed", receipt)
    _emit(
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
