"""Which rollouts a validator recomputes: a draw peers cannot predict but anyone can check afterwards.

The draw's seed is keccak of the validator's (deterministic, RFC 6979) EIP-712 signature over
(run id, epoch, peer, rollouts root): only the validator's key can produce it, the peer has
already committed its root before it exists, and the validator can publish the signature to
prove its draw was not chosen after the fact.

    picks = draw_rollouts(validator_key, domain, receipt, rate=0.1, minimum=1)   # sorted indices
"""

from __future__ import annotations

import math
import random

from eth_account import Account
from eth_utils import keccak

from coordination.attest.typed_data import recover_struct_signer, sign_struct

AUDIT_DRAW_FIELDS = (("runId", "bytes32"), ("epoch", "uint64"), ("peer", "address"), ("rolloutsRoot", "bytes32"))


def _message(receipt) -> dict:
    return {
        "runId": receipt.run_id,
        "epoch": receipt.epoch,
        "peer": receipt.peer,
        "rolloutsRoot": receipt.rollouts_root,
    }


def draw_signature(private_key, domain: dict, receipt) -> bytes:
    return sign_struct(private_key, domain, "AuditDraw", AUDIT_DRAW_FIELDS, _message(receipt))


def draw_signer(domain: dict, receipt, signature: bytes) -> str:
    return recover_struct_signer(domain, "AuditDraw", AUDIT_DRAW_FIELDS, _message(receipt), signature)


def rollouts_to_check(count: int, rate: float, minimum: int = 1) -> int:
    """How many of `count` rollouts get a forward-pass recomputation at sampling `rate`."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    return min(count, max(minimum, math.ceil(rate * count))) if count else 0


def draw_rollouts(private_key, domain: dict, receipt, *, count: int, rate: float, minimum: int = 1) -> list[int]:
    """Sorted indices (into the served record list) of the rollouts to recompute."""
    seed = int.from_bytes(keccak(draw_signature(private_key, domain, receipt)), "big")
    return sorted(random.Random(seed).sample(range(count), rollouts_to_check(count, rate, minimum)))


def validator_address(private_key) -> str:
    return Account.from_key(private_key).address
