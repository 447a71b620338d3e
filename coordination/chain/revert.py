"""Turn failed chain calls into `ChainError` with the decoded custom error's name and arguments.

Revert data is `selector(4 bytes) ++ abi.encode(args)`; the selector is matched against the custom
errors of all our contracts (plus `Error(string)` and `Panic(uint256)`). Works with eth-tester and
anvil, because both surface the raw revert data through web3's ContractCustomError / ContractLogicError.

    with chain_errors("stake"):
        staking.functions.stake(0).transact()
    # -> ChainError("stake reverted: ZeroAmount()", error_name="ZeroAmount", args=())
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from eth_abi import decode
from eth_utils import keccak, to_bytes, to_checksum_address

from coordination.chain.artifacts import error_abis
from coordination.errors import ChainError

_BUILTIN = {"Error": ["string"], "Panic": ["uint256"]}
NO_CHAIN_HINT = "start one with `hivetune devnet` or pass --rpc URL"


def _abi_type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return param["type"]


@cache
def _selectors() -> dict[bytes, tuple[str, list[str]]]:
    table = {}
    entries = [(n, t) for n, t in _BUILTIN.items()]
    entries += [(e["name"], [_abi_type(i) for i in e["inputs"]]) for e in error_abis()]
    for name, types in entries:
        table[keccak(text=f"{name}({','.join(types)})")[:4]] = (name, types)
    return table


def decode_revert_data(data: bytes | str | None) -> tuple[str, tuple] | None:
    """(error name, decoded args) for revert data of a known error, else None."""
    if not data:
        return None
    raw = to_bytes(hexstr=data) if isinstance(data, str) else bytes(data)
    known = _selectors().get(raw[:4])
    if known is None:
        return None
    name, types = known
    try:
        values = decode(types, raw[4:])
    except Exception:  # malformed payload behind a known selector
        return None
    return name, tuple(to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True))


def _format_arg(value) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


def _revert_data_of(exc: Exception) -> str | bytes | None:
    """Raw revert data: web3 puts it in `exc.data` (anvil); eth-tester in the message as a bytes repr."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):  # some providers nest it
        data = data.get("data")
    if isinstance(data, (str, bytes)):
        return data
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else ""
    marker = "execution reverted: "
    if text.startswith(marker) and text[len(marker) :].startswith(("b'", 'b"')):
        try:
            return ast.literal_eval(text[len(marker) :])
        except (ValueError, SyntaxError):
            return None
    return None


def chain_error_from(exc: Exception, action: str) -> ChainError:
    """A ChainError for `exc`, decoding the custom error if the exception carries revert data."""
    decoded = decode_revert_data(_revert_data_of(exc))
    if decoded is not None:
        name, args = decoded
        if name == "Error":
            return ChainError(f"{action} reverted: {args[0]}", name, args)
        return ChainError(f"{action} reverted: {name}({', '.join(_format_arg(a) for a in args)})", name, args)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ChainError(f"{action} failed: {text}")


def _connection_exceptions() -> tuple[type[Exception], ...]:
    import requests

    return (ConnectionError, TimeoutError, requests.exceptions.ConnectionError, requests.exceptions.Timeout)


def _is_connection_error(exc: Exception) -> bool:
    return isinstance(exc, _connection_exceptions())


def _chain_exceptions() -> tuple[type[Exception], ...]:
    """What a node or web3 raises for a failed call; programming errors (TypeError, ...) pass through."""
    from web3.exceptions import Web3Exception

    failed: tuple[type[Exception], ...] = (Web3Exception, ValueError, *_connection_exceptions())
    try:
        from eth_tester.exceptions import TransactionFailed, ValidationError

        failed += (TransactionFailed, ValidationError)
    except ImportError:  # eth-tester is a dev dependency
        pass
    return failed


@contextmanager
def chain_errors(action: str, rpc: str | None = None) -> Iterator[None]:
    """Re-raise any failure inside the block as a one-line ChainError."""
    try:
        yield
    except ChainError:
        raise
    except _chain_exceptions() as exc:
        if _is_connection_error(exc):
            where = f" at {rpc}" if rpc else ""
            raise ChainError(f"{action} failed: no chain answers{where}; {NO_CHAIN_HINT}") from exc
        raise chain_error_from(exc, action) from exc
