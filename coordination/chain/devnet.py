"""A local dev chain: anvil as a subprocess on a free loopback port, with everything deployed.

    with Devnet.start(accounts=6) as net:      # anvil up, contracts deployed, accounts funded
        net.deployment.save("deployment.json")
        w3 = net.w3
    # anvil stopped (by pid) on exit

Anvil comes from npm `@foundry-rs/anvil` (installed under contracts/node_modules by `make setup`);
the native binary is preferred, then `anvil` on PATH. Accounts derive from the devnet mnemonic
(anvil's well-known test mnemonic: never use these keys for anything of value).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from coordination.chain.artifacts import contracts_dir
from coordination.chain.deploy import TOKEN, Deployment, DeployParams, deploy_all
from coordination.errors import ChainError

DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
# Short delays so a demo moves along (a real run uses DeployParams' defaults: days, not minutes).
DEVNET_PARAMS = DeployParams(
    unbonding_delay=300,
    activation_delay=30,
    challenge_window=120,
    claim_window=24 * 3600,
    timelock_delay=30,
    min_peer_bond=1 * TOKEN,
    voting_delay=5,
    voting_period=300,
    min_validator_stake=1_000 * TOKEN,
    proposal_threshold=100 * TOKEN,
    quorum_percent=4,
)
READY_TIMEOUT_S = 20.0


def find_anvil() -> str:
    """Path of an anvil binary, or ChainError saying how to install one."""
    native = sorted(glob.glob(str(contracts_dir() / "node_modules/@foundry-rs/anvil-*/bin/anvil")))
    candidates = native + [shutil.which("anvil") or "", str(contracts_dir() / "node_modules/.bin/anvil")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise ChainError("anvil not found: run `make setup` (installs npm @foundry-rs/anvil under contracts/)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def devnet_accounts(n: int, mnemonic: str = DEVNET_MNEMONIC) -> list[LocalAccount]:
    """The first `n` accounts anvil creates from `mnemonic` (BIP-44 m/44'/60'/0'/0/i)."""
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


@dataclass
class AnvilProcess:
    """A running anvil; `stop()` ends it (and only it) by pid."""

    process: subprocess.Popen
    rpc_url: str

    @classmethod
    def start(cls, *, port: int | None = None, accounts: int = 10, chain_id: int = 31337) -> AnvilProcess:
        port = port or free_port()
        cmd = [find_anvil(), "--host", "127.0.0.1", "--port", str(port), "--accounts", str(accounts)]
        cmd += ["--mnemonic", DEVNET_MNEMONIC, "--chain-id", str(chain_id), "--silent"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        node = cls(proc, f"http://127.0.0.1:{port}")
        node._wait_ready()
        return node

    def _wait_ready(self) -> None:
        from web3 import Web3

        w3, deadline = (
            Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 2})),
            time.monotonic() + READY_TIMEOUT_S,
        )
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace").strip().splitlines()
                raise ChainError(f"anvil exited at start ({err[-1] if err else 'no output'}); is the port free?")
            try:
                if w3.eth.chain_id:
                    return
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise ChainError(f"anvil did not answer at {self.rpc_url} within {READY_TIMEOUT_S:.0f} s; retry")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the group is just anvil
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()


@dataclass
class Devnet:
    """anvil + deployed contracts + funded accounts (account 0 deploys; the others get tokens)."""

    node: AnvilProcess
    deployment: Deployment
    accounts: list[LocalAccount]
    funded: dict[str, int] = field(default_factory=dict)

    @property
    def rpc_url(self) -> str:
        return self.node.rpc_url

    @property
    def w3(self):
        from web3 import Web3

        return Web3(Web3.HTTPProvider(self.rpc_url))

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        accounts: int = 6,
        fund_each: int = 100_000 * TOKEN,
        params: DeployParams | None = None,
        deployment_path: str | Path | None = None,
    ) -> Devnet:
        node = AnvilProcess.start(port=port, accounts=max(accounts, 2))
        try:
            net = cls._deploy(node, devnet_accounts(max(accounts, 2)), fund_each, params)
            if deployment_path:
                net.deployment.save(deployment_path)
            return net
        except BaseException:
            node.stop()
            raise

    @classmethod
    def _deploy(cls, node: AnvilProcess, accounts: list[LocalAccount], fund_each: int, params) -> Devnet:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        deployer = accounts[0]
        deployment = deploy_all(w3, deployer, params)
        token = deployment.clients(w3).token
        for account in accounts[1:]:
            token.transfer(account.address, fund_each, sender=deployer)
        return cls(node, deployment, accounts, {a.address: fund_each for a in accounts[1:]})

    def stop(self) -> None:
        self.node.stop()

    def __enter__(self) -> Devnet:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
