"""Off-chain twin of `Staking.requireQuorumAt`: re-exported from the one EIP-712 stack (`chain/eip712.py`).

    signed_stake = require_quorum_offchain(digest, signatures, validator_stakes={addr: stake_at}, required=7)

Kept so existing imports keep working; the implementation lives in `coordination.chain.eip712`.
"""

from coordination.chain.eip712 import (  # noqa: F401
    SECP256K1_HALF_N,
    ZERO_ADDRESS,
    QuorumRejected,
    recover_like_oz,
    require_quorum_offchain,
)

ZERO = ZERO_ADDRESS
