"""Chain time: read it, and move it forward on a dev chain (eth-tester or anvil).

All our contracts use timestamps (ERC-6372 `mode=timestamp`), so tests, the devnet and the demo
move time rather than mine blocks.

    advance_time(w3, 3600)    # one hour later, with a new block mined at that time
"""

from __future__ import annotations

from coordination.chain.transact import is_in_process
from coordination.errors import ChainError


def chain_now(w3) -> int:
    """Timestamp of the latest block."""
    return w3.eth.get_block("latest")["timestamp"]


def mine_block(w3) -> int:
    """Mine an empty block at the chain's own current time; returns its timestamp. Dev chains only.

    anvil and eth-tester mine only on transactions, so after a quiet stretch (a long training run) the
    latest block's time lags: mine one before reading `chain_now` as "now" (e.g. a stake snapshot).
    """
    if is_in_process(w3):
        w3.testing.mine(1)
    else:
        try:
            w3.provider.make_request("evm_mine", [])
        except Exception as exc:
            raise ChainError(f"cannot mine a block on this chain ({exc}); only dev chains allow it") from exc
    return chain_now(w3)


def advance_time(w3, seconds: int) -> int:
    """Mine a block `seconds` after the latest one; returns its timestamp. Dev chains only."""
    if seconds < 0:
        raise ValueError(f"time only moves forward; got seconds={seconds}")
    target = chain_now(w3) + max(seconds, 1)
    if is_in_process(w3):
        # eth-tester mines the block at `to - 1` and refuses `to` <= the pending block's time
        pending = w3.eth.get_block("pending")["timestamp"]
        w3.testing.timeTravel(max(target, pending) + 1)
    else:
        try:
            w3.provider.make_request("evm_setNextBlockTimestamp", [target])
            w3.provider.make_request("evm_mine", [])
        except Exception as exc:
            raise ChainError(
                f"cannot move time on this chain ({exc}); only dev chains (anvil, eth-tester) allow it"
            ) from exc
    return chain_now(w3)
