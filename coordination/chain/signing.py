"""Validator signatures for the ledger and staking contracts: re-exported from `coordination.chain.eip712`.

Kept so existing imports (`from coordination.chain.signing import run_key, sign_period`) keep working;
there is one EIP-712 implementation, in `eip712.py`.
"""

from coordination.chain.eip712 import (  # noqa: F401
    LEDGER_NAME,
    PERIOD_FIELDS,
    SLASH_FIELDS,
    STAKING_NAME,
    VERSION,
    VOID_FIELDS,
    Eip712Domain,
    PeriodSettlement,
    Signer,
    ledger_domain,
    order_by_signer,
    period_digest,
    quorum_signatures,
    recover_period_signers,
    recover_slash_signers,
    recover_void_signers,
    run_key,
    sign_period,
    sign_permit,
    sign_slash,
    sign_void,
    slash_digest,
    staking_domain,
)
