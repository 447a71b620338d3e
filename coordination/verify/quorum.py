"""Off-chain twin of `Staking.requireQuorum`: the same signature sets fail with the same custom error.

An aggregator checks a signature set before paying gas for a transaction that would revert;
the error names (`NoSignatures`, `SignersNotSorted`, `NotAValidator`, `QuorumNotReached`, OZ's
`ECDSAInvalidSignature*`) and arguments are the contract's, in the order the contract checks.

    signed_stake = require_quorum_offchain(digest, signatures, validator_stakes={addr: stake}, required=7)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from eth_keys import keys
from eth_utils import to_checksum_address

from coordination.errors import AttestationError

SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0
ZERO = "0x" + "00" * 20


class QuorumRejected(AttestationError):
    """A signature set the contracts would reject; `error_name`/`error_args` name the contract's custom error."""

    def __init__(self, error_name: str, args: tuple = ()):
        super().__init__(
            f"signature set rejected: {error_name}{args}; collect fresh signatures from registered "
            "validators, one each, sorted by signer address"
        )
        self.error_name, self.error_args = error_name, tuple(args)


def recover_like_oz(digest: bytes, signature: bytes) -> str:
    """`ECDSA.recover(digest, signature)` of OpenZeppelin v5, errors included."""
    if len(signature) != 65:
        raise QuorumRejected("ECDSAInvalidSignatureLength", (len(signature),))
    r, s, v = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big"), signature[64]
    if s > SECP256K1_HALF_N:
        raise QuorumRejected("ECDSAInvalidSignatureS", (signature[32:64],))
    if v not in (27, 28) or r == 0 or s == 0:
        raise QuorumRejected("ECDSAInvalidSignature")
    try:
        public = keys.Signature(vrs=(v - 27, r, s)).recover_public_key_from_msg_hash(digest)
    except Exception as exc:  # no point on the curve for this r
        raise QuorumRejected("ECDSAInvalidSignature") from exc
    return public.to_checksum_address()


def require_quorum_offchain(
    digest: bytes, signatures: Sequence[bytes], *, validator_stakes: Mapping[str, int], required: int
) -> int:
    """Signed stake of a valid quorum; QuorumRejected with the contract's error otherwise."""
    stakes = {to_checksum_address(a): int(s) for a, s in validator_stakes.items()}
    if not signatures:
        raise QuorumRejected("NoSignatures")
    previous, signed_stake = ZERO, 0
    for signature in signatures:
        signer = recover_like_oz(digest, bytes(signature))
        if int(signer, 16) <= int(previous, 16):
            raise QuorumRejected("SignersNotSorted", (previous, signer))
        if signer not in stakes:
            raise QuorumRejected("NotAValidator", (signer,))
        signed_stake += stakes[signer]
        previous = signer
    if signed_stake < required:
        raise QuorumRejected("QuorumNotReached", (signed_stake, required))
    return signed_stake
