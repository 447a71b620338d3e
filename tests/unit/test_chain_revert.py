"""Revert data → ChainError(name, args), for both ways providers report it; chain-down messages."""

import pytest
from eth_abi import encode
from eth_utils import keccak

from coordination.chain.deploy import Deployment
from coordination.chain.revert import chain_error_from, chain_errors, decode_revert_data
from coordination.chain.sandbox import ANY, revert_of
from coordination.errors import ChainError

ADDR = "0x000000000000000000000000000000000000bEEF"


def revert_data(signature: str, types: list, values: list) -> bytes:
    return keccak(text=signature)[:4] + encode(types, values)


def test_custom_error_with_arguments_decodes():
    data = revert_data("StakeTooLow(uint256,uint256)", ["uint256", "uint256"], [5, 10])
    assert decode_revert_data(data) == ("StakeTooLow", (5, 10))
    assert decode_revert_data("0x" + data.hex()) == ("StakeTooLow", (5, 10))


def test_addresses_come_back_checksummed_and_builtin_errors_decode():
    data = revert_data("NotAValidator(address)", ["address"], [ADDR.lower()])
    assert decode_revert_data(data) == ("NotAValidator", (ADDR,))
    assert decode_revert_data(revert_data("Error(string)", ["string"], ["boom"])) == ("Error", ("boom",))
    assert decode_revert_data(revert_data("Panic(uint256)", ["uint256"], [0x11])) == ("Panic", (0x11,))


def test_unknown_or_empty_data_is_not_decoded():
    assert decode_revert_data(b"\xde\xad\xbe\xef") is None
    assert decode_revert_data(b"") is None
    assert decode_revert_data(None) is None


class FakeWeb3Error(Exception):
    def __init__(self, message, data=None):
        super().__init__(message)
        self.data = data


def test_error_from_anvil_style_exception_data():
    data = revert_data(
        "AlreadyClaimed(bytes32,uint256,address)", ["bytes32", "uint256", "address"], [b"\x01" * 32, 3, ADDR]
    )
    err = chain_error_from(FakeWeb3Error("execution reverted", "0x" + data.hex()), "claim")
    assert (err.error_name, err.error_args) == ("AlreadyClaimed", (b"\x01" * 32, 3, ADDR))
    assert str(err) == f"claim reverted: AlreadyClaimed(0x{'01' * 32}, 3, {ADDR})"


def test_error_from_eth_tester_style_message():
    data = revert_data("ZeroAmount()", [], [])
    err = chain_error_from(Exception(f"execution reverted: {data!r}"), "stake")
    assert (err.error_name, err.error_args, str(err)) == ("ZeroAmount", (), "stake reverted: ZeroAmount()")


def test_undecodable_failure_keeps_the_first_line():
    err = chain_error_from(Exception("out of gas\nmore detail"), "stake")
    assert err.error_name is None and str(err) == "stake failed: out of gas"


def test_chain_down_is_a_one_line_fix_it_error():
    from web3 import Web3

    from coordination.chain.devnet import free_port

    rpc = f"http://127.0.0.1:{free_port()}"
    w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": 2}))
    with pytest.raises(ChainError) as info, chain_errors("stake", rpc):
        w3.eth.get_block_number()
    assert (
        str(info.value)
        == f"stake failed: no chain answers at {rpc}; start one with `hivetune devnet` or pass --rpc URL"
    )


def test_programming_errors_are_not_swallowed():
    with pytest.raises(TypeError), chain_errors("stake"):
        raise TypeError("a bug")


def test_revert_of_returns_the_exact_error_and_fails_when_nothing_reverts():
    def reverts(name, args):
        raise ChainError("x", name, args)

    assert revert_of(reverts, "StakeTooLow", (5, 10)) == ("StakeTooLow", (5, 10))
    assert revert_of(reverts, "StakeTooLow", (5, 10)) != ("StakeTooLow", (5, 11))
    assert revert_of(reverts, "StillUnbonding", [7, 123]) == ("StillUnbonding", (7, ANY))  # ANY: one argument
    assert revert_of(reverts, "StillUnbonding", (7, 123)) != ("StillUnbonding", (7,))
    with pytest.raises(AssertionError, match="succeeded"):
        revert_of(lambda: None)
    with pytest.raises(TypeError):  # anything but a revert is not swallowed
        revert_of(lambda: 1 / "x")


def test_deployment_file_round_trips_atomically_and_bad_files_say_what_to_do(tmp_path):
    dep = Deployment(31337, ADDR, ADDR, ADDR, ADDR, ADDR, ADDR, ADDR, 5)
    path = dep.save(tmp_path / "sub" / "deployment.json")
    assert Deployment.load(path) == dep
    assert [p.name for p in path.parent.iterdir()] == ["deployment.json"]  # no temp file left behind
    with pytest.raises(ChainError, match="hivetune devnet"):
        Deployment.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"chain_id": 1}')
    with pytest.raises(ChainError, match="not a hivetune deployment"):
        Deployment.load(tmp_path / "bad.json")
