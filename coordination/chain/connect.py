"""Open a chain for a command: RPC + deployment.json + (optionally) a signing key.

The one way every command reaches the contracts: the node must answer, be the chain the deployment
was made on (chain id), and hold code at every address of the deployment.

w3, deployment, clients = connect("http://127.0.0.1:8545", "deployment.json")
account = account_from_key(key)          # from --key / $HIVETUNE_KEY
"""

from __future__ import annotations

from pathlib import Path

from coordination.chain.deploy import Clients, Deployment
from coordination.chain.revert import chain_errors
from coordination.errors import ChainError, ConfigError

DEFAULT_RPC = "http://127.0.0.1:8545"
DEFAULT_DEPLOYMENT = "deployment.json"
CONTRACTS = ("token", "staking", "ledger", "timelock", "governor", "registry")


def connect(rpc: str, deployment_path: str | Path) -> tuple[object, Deployment, Clients]:
    """Web3 on `rpc`, checked to be the chain `deployment_path` was deployed on."""
    from web3 import Web3

    deployment = Deployment.load(deployment_path)
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 10}))
    with chain_errors("connecting", rpc):
        chain_id = w3.eth.chain_id
    if chain_id != deployment.chain_id:
        raise ChainError(
            f"{deployment_path} is for chain {deployment.chain_id} but {rpc} is chain {chain_id}; "
            "pass the matching --rpc or --deployment"
        )
    with chain_errors("connecting", rpc):
        empty = [name for name in CONTRACTS if len(w3.eth.get_code(getattr(deployment, name))) == 0]
    if empty:
        raise ChainError(
            f"no contract code for {', '.join(empty)} at the addresses in {deployment_path} on {rpc} "
            "(a restarted devnet?); redeploy with `hivetune devnet`"
        )
    return w3, deployment, deployment.clients(w3)


def account_from_key(key: str | None):
    """LocalAccount from a 0x-hex private key, or ConfigError saying how to give one."""
    from eth_account import Account

    if not key:
        raise ConfigError("no signing key: pass --key 0x<private key> or set HIVETUNE_KEY")
    try:
        return Account.from_key(key)
    except Exception as exc:
        raise ConfigError(
            f"--key is not a valid private key ({type(exc).__name__}); expected 0x + 64 hex digits"
        ) from exc
