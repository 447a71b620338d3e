"""Settle a reward period on chain and hand each peer a claim file; slash conclusive cheaters.

The aggregator (any validator) collects the validators' EIP-712 `Period` signatures over the
contribution root (`coordination.chain.signing.sign_period`, the ledger's domain), checks the set
off-chain with the contract's own rules, submits it with `ContributionLedger.submitPeriod`, and
writes one claim file per peer, which `hivetune claim --claim-file` consumes:

    {"runId": "0x..", "period": 0, "peer": "0x..", "units": 120, "proof": ["0x.."], "root": "0x..",
     "totalUnits": 480, "reward": 1000, "chainId": 31337, "ledger": "0x.."}

    settled = settle_period(ledger, staking, run_key, period, table, reward, signatures, sender=aggregator)
    write_claim_files(settled, "outputs/claims")
    slash_fraud(staking, outcome, signers, domain, amount, sender=aggregator)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_utils import to_checksum_address

from coordination.chain.merkle import StandardMerkleTree
from coordination.chain.signing import Eip712Domain, order_by_signer, sign_period, sign_slash
from coordination.errors import AttestationError
from coordination.verify.contributions import contribution_rows, contribution_tree
from coordination.verify.quorum import require_quorum_offchain
from coordination.verify.reconcile import ReceiptOutcome


class BadClaimFile(AttestationError):
    """A claim file is missing fields or its proof does not match its root."""


@dataclass(frozen=True)
class SettledPeriod:
    run_key: bytes
    period: int
    tree: StandardMerkleTree
    table: dict[str, int]
    reward: int
    chain_id: int
    ledger: str

    @property
    def total_units(self) -> int:
        return sum(self.table.values())

    def claim(self, peer: str) -> dict:
        rows = contribution_rows(self.table)
        i = [p for p, _ in rows].index(to_checksum_address(peer))
        return {
            "runId": "0x" + self.run_key.hex(),
            "period": self.period,
            "peer": rows[i][0],
            "units": rows[i][1],
            "proof": ["0x" + h.hex() for h in self.tree.proof(i)],
            "root": "0x" + self.tree.root.hex(),
            "totalUnits": self.total_units,
            "reward": self.reward,
            "chainId": self.chain_id,
            "ledger": self.ledger,
        }


def sign_contribution_period(
    account, domain: Eip712Domain, run_key: bytes, period: int, table: dict[str, int], reward: int
) -> tuple[str, bytes]:
    """One validator's (address, Period signature) over the table's root."""
    root = contribution_tree(table).root
    return account.address, sign_period(account, domain, run_key, period, root, sum(table.values()), reward)


def validator_stakes(staking, addresses: Sequence[str]) -> dict[str, int]:
    return {to_checksum_address(a): staking.stake_of(a) for a in addresses if staking.is_validator(a)}


def settle_period(
    ledger,
    staking,
    run_key: bytes,
    period: int,
    table: dict[str, int],
    reward: int,
    signed: Sequence[tuple[str, bytes]],
    *,
    sender,
) -> SettledPeriod:
    """Order the signatures, pre-check them like the contract, submit the period; returns what was settled."""
    tree = contribution_tree(table)
    signatures = order_by_signer(signed)
    digest = ledger.period_digest(run_key, period, tree.root, sum(table.values()), reward)
    require_quorum_offchain(
        digest,
        signatures,
        validator_stakes=validator_stakes(staking, [a for a, _ in signed]),
        required=staking.required_quorum_stake(),
    )
    ledger.submit_period(run_key, period, tree.root, sum(table.values()), reward, signatures, sender=sender)
    return SettledPeriod(run_key, period, tree, dict(table), reward, ledger.w3.eth.chain_id, ledger.address)


def write_claim_files(settled: SettledPeriod, out_dir: str | Path) -> list[Path]:
    """One `<peer>-period<N>.json` per peer with units, written atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for peer in settled.table:
        path = out / f"{to_checksum_address(peer)}-period{settled.period}.json"
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(settled.claim(peer), indent=2) + "\n")
        os.replace(tmp, path)
        paths.append(path)
    return paths


def load_claim_file(path: str | Path) -> dict:
    """Parse and check a claim file (its proof must lead to its root); returns the dict with bytes fields."""
    from coordination.chain.merkle import leaf_hash, verify_proof

    try:
        data = json.loads(Path(path).read_text())
        proof = [bytes.fromhex(h[2:]) for h in data["proof"]]
        root, peer, units = bytes.fromhex(data["root"][2:]), to_checksum_address(data["peer"]), int(data["units"])
        run_key, period = bytes.fromhex(data["runId"][2:]), int(data["period"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise BadClaimFile(f"{path}: not a claim file ({exc}); ask the aggregator for a fresh one") from exc
    if not verify_proof(root, leaf_hash(("address", "uint256"), (peer, units)), proof):
        raise BadClaimFile(f"{path}: proof does not lead to root {data['root']}; the file is corrupt")
    return {**data, "proof": proof, "root": root, "peer": peer, "units": units, "runId": run_key, "period": period}


def slash_fraud(staking, outcome: ReceiptOutcome, accounts, attest_domain: dict, amount: int, *, sender) -> bytes:
    """Slash the peer of a FRAUD outcome by `amount`, signed by the accounts whose verdicts confirmed it."""
    evidence = outcome.evidence(attest_domain)
    confirmed = set(outcome.signers(attest_domain))
    signers = [a for a in accounts if a.address in confirmed]
    domain = staking.domain()
    signatures = order_by_signer((a.address, sign_slash(a, domain, outcome.peer, amount, evidence)) for a in signers)
    staking.slash(outcome.peer, amount, evidence, signatures, sender=sender)
    return evidence
