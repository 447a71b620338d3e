"""EIP-712 signatures of validators, byte-for-byte what the contracts check.

Three messages, each bound by its domain to one chain id and one contract (so a signature can be
replayed neither across chains nor across deployments), and by its fields to one run and period:

- `Period(bytes32 runId,uint256 period,bytes32 root,uint256 totalUnits,uint256 reward)`: settle a
  reward period (ContributionLedger.submitPeriod); domain "HivetuneContributionLedger" v1.
- `VoidPeriod(bytes32 runId,uint256 period)`: void it in its challenge window (voidPeriod).
- `Slash(address offender,uint256 amount,bytes32 evidence)`: Staking.slash; domain "HivetuneStaking" v1.

The contracts want signatures ordered by *strictly increasing signer address*; `quorum_signatures`
does that. Example (an aggregator with three validator keys):

    domain = ledger_domain(chain_id, ledger_address)
    sigs = quorum_signatures(validators, lambda a: sign_period(a, domain, run_id, 0, tree.root, 30, 10**18))
    ledger.submit_period(run_id, 0, tree.root, 30, 10**18, sigs, sender=aggregator)
    recover_period_signers(sigs, domain, run_id, 0, tree.root, 30, 10**18)   # -> [addresses]

Run ids: on chain a run is a bytes32. `run_key("bafy...")` is keccak256 of the run id string (the
run config's CID); a 0x-prefixed 32-byte hex string or 32 raw bytes is taken as is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import is_hexstr, keccak, to_bytes, to_checksum_address

from coordination.errors import AttestationError

LEDGER_NAME = "HivetuneContributionLedger"
STAKING_NAME = "HivetuneStaking"
VERSION = "1"

PERIOD_FIELDS = [
    {"name": "runId", "type": "bytes32"},
    {"name": "period", "type": "uint256"},
    {"name": "root", "type": "bytes32"},
    {"name": "totalUnits", "type": "uint256"},
    {"name": "reward", "type": "uint256"},
]
VOID_FIELDS = [{"name": "runId", "type": "bytes32"}, {"name": "period", "type": "uint256"}]
SLASH_FIELDS = [
    {"name": "offender", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "evidence", "type": "bytes32"},
]
DOMAIN_FIELDS = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

Signer = LocalAccount | str | bytes  # an account or its private key


@dataclass(frozen=True)
class Eip712Domain:
    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


def ledger_domain(chain_id: int, ledger_address: str) -> Eip712Domain:
    return Eip712Domain(LEDGER_NAME, VERSION, chain_id, ledger_address)


def staking_domain(chain_id: int, staking_address: str) -> Eip712Domain:
    return Eip712Domain(STAKING_NAME, VERSION, chain_id, staking_address)


def run_key(run_id: str | bytes) -> bytes:
    """The bytes32 a run is known by on chain (see module docstring)."""
    if isinstance(run_id, bytes):
        if len(run_id) != 32:
            raise ValueError(f"a raw run id must be 32 bytes, got {len(run_id)}; pass the run id string instead")
        return run_id
    if is_hexstr(run_id) and run_id.startswith("0x") and len(run_id) == 66:
        return to_bytes(hexstr=run_id)
    if not run_id:
        raise ValueError("run id is empty; pass the run config's CID")
    return keccak(text=run_id)


def _typed(domain: Eip712Domain, primary: str, fields: list, message: dict):
    return encode_typed_data(
        full_message={
            "types": {"EIP712Domain": DOMAIN_FIELDS, primary: fields},
            "primaryType": primary,
            "domain": domain.as_dict(),
            "message": message,
        }
    )


def _period_message(run_id, period: int, root: bytes, total_units: int, reward: int) -> dict:
    return {
        "runId": run_key(run_id),
        "period": period,
        "root": bytes(root),
        "totalUnits": total_units,
        "reward": reward,
    }


def _as_account(signer: Signer) -> LocalAccount:
    return signer if isinstance(signer, LocalAccount) else Account.from_key(signer)


def _sign(signer: Signer, signable) -> bytes:
    return bytes(_as_account(signer).sign_message(signable).signature)


def _recover(signatures: Iterable[bytes], signable) -> list[str]:
    try:
        return [Account.recover_message(signable, signature=bytes(s)) for s in signatures]
    except Exception as exc:  # malformed signature bytes
        raise AttestationError(f"cannot recover a signer: {exc}; check the signature is 65 bytes r||s||v") from exc


def period_digest(domain: Eip712Domain, run_id, period: int, root: bytes, total_units: int, reward: int) -> bytes:
    """The 32-byte EIP-712 digest of a Period message (equals ContributionLedger.periodDigest)."""
    from eth_account.messages import _hash_eip191_message

    typed = _typed(domain, "Period", PERIOD_FIELDS, _period_message(run_id, period, root, total_units, reward))
    return _hash_eip191_message(typed)


def sign_period(
    signer: Signer, domain: Eip712Domain, run_id, period: int, root: bytes, total_units: int, reward: int
) -> bytes:
    """A validator's 65-byte signature approving a period's contribution root."""
    return _sign(
        signer, _typed(domain, "Period", PERIOD_FIELDS, _period_message(run_id, period, root, total_units, reward))
    )


def recover_period_signers(
    signatures: Sequence[bytes], domain: Eip712Domain, run_id, period: int, root: bytes, total_units: int, reward: int
) -> list[str]:
    """Off-chain twin of the ledger's check: the address behind each signature, in order."""
    typed = _typed(domain, "Period", PERIOD_FIELDS, _period_message(run_id, period, root, total_units, reward))
    return _recover(signatures, typed)


def sign_void(signer: Signer, domain: Eip712Domain, run_id, period: int) -> bytes:
    return _sign(signer, _typed(domain, "VoidPeriod", VOID_FIELDS, {"runId": run_key(run_id), "period": period}))


def recover_void_signers(signatures: Sequence[bytes], domain: Eip712Domain, run_id, period: int) -> list[str]:
    return _recover(
        signatures, _typed(domain, "VoidPeriod", VOID_FIELDS, {"runId": run_key(run_id), "period": period})
    )


def _slash_message(offender: str, amount: int, evidence: bytes) -> dict:
    return {"offender": to_checksum_address(offender), "amount": amount, "evidence": bytes(evidence)}


def sign_slash(signer: Signer, domain: Eip712Domain, offender: str, amount: int, evidence: bytes) -> bytes:
    """A validator's signature approving a slash; `evidence` = 32-byte hash of the signed fraud evidence."""
    return _sign(signer, _typed(domain, "Slash", SLASH_FIELDS, _slash_message(offender, amount, evidence)))


def recover_slash_signers(
    signatures: Sequence[bytes], domain: Eip712Domain, offender: str, amount: int, evidence: bytes
) -> list[str]:
    return _recover(signatures, _typed(domain, "Slash", SLASH_FIELDS, _slash_message(offender, amount, evidence)))


PERMIT_FIELDS = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def sign_permit(signer: Signer, token_domain: Eip712Domain, spender: str, value: int, nonce: int, deadline: int):
    """EIP-2612 permit by `signer` for `spender`; returns (v, r, s) for `Staking.stakeWithPermit`.

    `token_domain` = Eip712Domain(<token name>, "1", chain id, token address) for HiveToken.
    """
    account = _as_account(signer)
    message = {
        "owner": account.address,
        "spender": to_checksum_address(spender),
        "value": value,
        "nonce": nonce,
        "deadline": deadline,
    }
    signed = account.sign_message(_typed(token_domain, "Permit", PERMIT_FIELDS, message))
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def order_by_signer(signed: Iterable[tuple[str, bytes]]) -> list[bytes]:
    """Signatures sorted by strictly increasing signer address, as the contracts require."""
    pairs = sorted(((int(addr, 16), sig) for addr, sig in signed), key=lambda p: p[0])
    for (a, _), (b, _) in zip(pairs, pairs[1:], strict=False):
        if a == b:
            raise AttestationError(f"signer {to_checksum_address(hex(a))} signed twice; keep one signature per signer")
    return [sig for _, sig in pairs]


def quorum_signatures(signers: Iterable[Signer], sign: Callable[[LocalAccount], bytes]) -> list[bytes]:
    """Sign with each signer (`sign(account) -> signature`) and order the results for the contracts."""
    accounts = [_as_account(s) for s in signers]
    return order_by_signer((a.address, sign(a)) for a in accounts)
