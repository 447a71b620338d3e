"""keccak256 of bytes, through the fastest backend installed.

`eth_utils.keccak` dispatches through eth_hash's backend and its argument checks (~10 us a call on
this box); `safe-pysha3`'s C `keccak_256` (installed with the eth stack) is ~4x faster, which counts
when an audit hashes every record's leaf and the Merkle tree of every receipt. The digest is the
same (tests/unit/test_attest_receipts.py checks both against each other); without pysha3 this is
`eth_utils.keccak`.

    keccak(b"...")   # 32 bytes
"""

from __future__ import annotations

try:
    from sha3 import keccak_256 as _keccak_256

    def keccak(data: bytes) -> bytes:
        """keccak256(data) (not SHA3-256: Ethereum's pre-standard padding)."""
        return _keccak_256(data).digest()

    BACKEND = "pysha3"
except ImportError:  # pragma: no cover - depends on the environment
    from eth_utils import keccak as _eth_keccak

    def keccak(data: bytes) -> bytes:
        """keccak256(data) (not SHA3-256: Ethereum's pre-standard padding)."""
        return _eth_keccak(data)

    BACKEND = "eth_utils"
