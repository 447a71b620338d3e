"""Open a chain for a command: RPC + deployment.json, checked.

The one way every command reaches the contracts: the node must answer, be the chain the deployment
was made on (chain id), and hold code at every address of the deployment. Signing keys come from
`coordination.chain.keys` (a key file or $HIVETUNE_KEY).

    w3, deployment, clients = connect(resolve_rpc(None, spec), "deployment.json")

Nothing heavy is imported at module level: `DEFAULT_RPC` is read by the run spec and the CLI options.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from coordination.errors import ChainError

if TYPE_CHECKING:
    from coordination.chain.deploy import Clients, Deployment

DEFAULT_RPC = "http://127.0.0.1:8545"
DEFAULT_DEPLOYMENT = "deployment.json"
CONTRACTS = ("token", "staking", "ledger", "timelock", "governor", "registry")


def connect(rpc: str, deployment_path: str | Path) -> tuple[object, Deployment, Clients]:
    """Web3 on `rpc`, checked to be the chain `deployment_path` was deployed on."""
    from web3 import Web3

    from coordination.chain.deploy import Deployment
    from coordination.chain.revert import chain_errors

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


def resolve_rpc(rpc: str | None, spec=None) -> str:
    """The JSON-RPC URL a command uses: the one given, else the run spec's `chain.rpc_url`, else DEFAULT_RPC."""
    if rpc:
        return rpc
    chain = getattr(spec, "chain", None)
    return chain.rpc_url if chain is not None else DEFAULT_RPC
