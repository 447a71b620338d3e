"""One key convention: a signing key comes from --key-file (mode 0600) or $HIVETUNE_KEY, never from argv."""

import os
import subprocess
import sys

import pytest
from eth_account import Account
from typer.testing import CliRunner

from coordination.chain.connect import DEFAULT_RPC, resolve_rpc
from coordination.chain.keys import load_account, read_private_key, require_private_key, write_key_file
from coordination.cli.app import app
from coordination.errors import ConfigError
from coordination.swarm.runspec import ChainSpec, RunSpec

KEY = "0x" + "5a" * 32
ACCOUNT = Account.from_key(KEY)


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch):
    monkeypatch.delenv("HIVETUNE_KEY", raising=False)


def test_a_written_key_file_is_private_and_reads_back(tmp_path):
    path = write_key_file(tmp_path / "keys" / "me.key", bytes.fromhex(KEY[2:]))
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_private_key(path) == KEY and load_account(path).address == ACCOUNT.address
    path.chmod(0o644)
    write_key_file(path, KEY)  # rewriting an existing file also makes it private
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_the_key_file_wins_over_the_environment_and_the_environment_over_nothing(tmp_path, monkeypatch):
    assert read_private_key(None) is None
    monkeypatch.setenv("HIVETUNE_KEY", "5b" * 32)  # 0x is optional
    assert read_private_key(None) == "0x" + "5b" * 32
    assert read_private_key(write_key_file(tmp_path / "k", KEY)) == KEY


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "not found: pass --key-file PATH"),
        (lambda p: p.mkdir(), "is not a regular file"),
        (lambda p: (p.write_text(KEY), p.chmod(0o644)), "is accessible by other users (mode 644): run `chmod 600"),
        (lambda p: (p.write_text("0x1234"), p.chmod(0o600)), "does not hold a private key: expected one line"),
        (lambda p: (p.write_text("0x" + "00" * 32), p.chmod(0o600)), "does not hold a private key"),
    ],
)
def test_an_unusable_key_file_is_a_one_line_error_that_never_echoes_the_content(tmp_path, setup, message):
    path = tmp_path / "me.key"
    setup(path)
    with pytest.raises(ConfigError, match="^key file .*" + message.replace("(", r"\(").replace(")", r"\)")) as err:
        read_private_key(path)
    assert "\n" not in str(err.value) and "1234" not in str(err.value)


def test_a_malformed_environment_key_and_a_missing_key_say_what_to_do(monkeypatch):
    with pytest.raises(ConfigError, match=r"no validator key: pass --key-file PATH .* or set HIVETUNE_KEY"):
        require_private_key(None, role="validator")
    monkeypatch.setenv("HIVETUNE_KEY", "not-a-key")
    with pytest.raises(ConfigError, match=r"^\$HIVETUNE_KEY does not hold a private key"):
        require_private_key(None)


@pytest.mark.parametrize("flag", ["--key", "--key=0x" + "5a" * 32])
def test_a_key_on_the_command_line_is_refused_before_anything_runs(tmp_path, flag):
    args = ["stake", "1", "--deployment", str(tmp_path / "absent.json"), *([flag, KEY] if "=" not in flag else [flag])]
    result = CliRunner().invoke(app, args)
    assert isinstance(result.exception, ConfigError)
    assert "--key is not accepted" in str(result.exception) and "--key-file" in str(result.exception)
    assert "5a5a" not in str(result.exception)


def test_the_console_script_refuses_a_raw_key_with_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "coordination.cli.app", "vote", "1", "for", "--key", KEY],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "HIVETUNE_KEY" in done.stderr


def test_commands_check_the_key_before_touching_the_chain_or_the_swarm(tmp_path):
    loose = tmp_path / "loose.key"
    loose.write_text(KEY)
    loose.chmod(0o640)
    for args in (
        ["withdraw", "--rpc", "http://127.0.0.1:9", "--deployment", str(tmp_path / "absent.json")],
        ["join", "--run", str(tmp_path / "absent.yaml"), "--initial-peers", "/ip4/127.0.0.1/tcp/9"],
        [
            "settle",
            "--run",
            str(tmp_path / "absent.yaml"),
            "--signatures",
            "x",
            "--deployment",
            "y",
            "--claims-dir",
            "z",
        ],
    ):
        result = CliRunner().invoke(app, [*args, "--key-file", str(loose)])
        assert isinstance(result.exception, ConfigError), (args, result.output)
        assert "accessible by other users (mode 640)" in str(result.exception)


def test_the_rpc_is_the_one_given_else_the_specs_else_the_default():
    assert DEFAULT_RPC == "http://127.0.0.1:8545" and ChainSpec().rpc_url == DEFAULT_RPC
    spec = RunSpec(name="x", chain=ChainSpec(rpc_url="http://10.0.0.2:8545"))
    assert resolve_rpc("http://h:1", spec) == "http://h:1"
    assert resolve_rpc(None, spec) == "http://10.0.0.2:8545"
    assert resolve_rpc(None, RunSpec(name="x")) == resolve_rpc(None) == DEFAULT_RPC
