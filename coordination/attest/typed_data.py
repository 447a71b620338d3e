"""EIP-712 plumbing shared by receipts and verdicts: the domain, signing, and signer recovery.

The domain binds name, version, chain id and (when known) the ContributionLedger address, so
a signature made for one chain or deployment never verifies on another.

    domain = attest_domain(chain_id=31337, verifying_contract=ledger_address)
    sig = sign_struct(key, domain, "WorkReceipt", WORK_RECEIPT_FIELDS, message)
    recover_struct_signer(domain, "WorkReceipt", WORK_RECEIPT_FIELDS, message, sig)   # -> '0x...'
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from coordination.errors import AttestationError

DOMAIN_NAME = "hivetune"
DOMAIN_VERSION = "1"
ZERO_ADDRESS = "0x" + "00" * 20


def attest_domain(
    *, chain_id: int, verifying_contract: str | None = None, name: str = DOMAIN_NAME, version: str = DOMAIN_VERSION
) -> dict:
    """The EIP-712 domain of hivetune attestations on `chain_id` (contract = the ledger, when deployed)."""
    return {
        "name": name,
        "version": version,
        "chainId": int(chain_id),
        "verifyingContract": verifying_contract or ZERO_ADDRESS,
    }


def _signable(domain: dict, primary: str, fields: Sequence[tuple[str, str]], message: dict):
    types = {primary: [{"name": n, "type": t} for n, t in fields]}
    return encode_typed_data(domain_data=domain, message_types=types, message_data=message)


def struct_digest(domain: dict, primary: str, fields, message: dict) -> bytes:
    """The 32-byte EIP-712 digest that is signed (`keccak(0x1901 || domainSeparator || structHash)`)."""
    signable = _signable(domain, primary, fields, message)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def sign_struct(private_key, domain: dict, primary: str, fields, message: dict) -> bytes:
    """65-byte (r, s, v) signature of the typed struct."""
    signable = _signable(domain, primary, fields, message)
    return bytes(Account.sign_message(signable, private_key=private_key).signature)


def recover_struct_signer(domain: dict, primary: str, fields, message: dict, signature: bytes) -> str:
    """Checksummed address that signed the struct; AttestationError when the signature is malformed."""
    try:
        return Account.recover_message(_signable(domain, primary, fields, message), signature=bytes(signature))
    except Exception as exc:  # eth-keys raises several types for bad r/s/v
        raise AttestationError(
            f"malformed EIP-712 signature over {primary}: {exc}; ask the signer to re-sign"
        ) from exc
