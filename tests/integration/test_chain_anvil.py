"""The whole chain flow on a real anvil process: deploy, stake, settle, claim (via the CLI), promote.

The fixture starts anvil on a free loopback port and kills it by pid; skipped when anvil is not
installed (`make setup`).
"""

import json
import os
import signal
import subprocess
import sys

import pytest
from eth_utils import keccak
from typer.testing import CliRunner

from coordination.chain.claims import tickets_for
from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import TOKEN, DeployParams
from coordination.chain.devnet import Devnet, find_anvil
from coordination.chain.eip712 import PeriodSettlement, quorum_signatures, run_key, sign_period, sign_struct
from coordination.chain.governance import ProposalState, Support, promotion_proposal
from coordination.chain.merkle import StandardMerkleTree
from coordination.chain.sandbox import revert_of
from coordination.errors import ChainError
from coordination.governance.transparent_eval import EVAL_ATTESTATION_FIELDS, eval_domain

pytestmark = [pytest.mark.chain, pytest.mark.slow]

try:
    find_anvil()
    HAS_ANVIL = True
except ChainError:
    HAS_ANVIL = False

PARAMS = DeployParams(
    unbonding_delay=60,
    activation_delay=10,
    challenge_window=30,
    timelock_delay=20,
    min_peer_bond=1 * TOKEN,
    voting_delay=5,
    voting_period=60,
    min_validator_stake=1000 * TOKEN,
    proposal_threshold=100 * TOKEN,
    quorum_percent=4,
)
RUN = "bafy-anvil-run"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    if not HAS_ANVIL:
        pytest.skip("anvil not installed: run `make setup`")
    path = tmp_path_factory.mktemp("devnet") / "deployment.json"
    net = Devnet.start(accounts=6, params=PARAMS, deployment_path=path)
    yield net
    net.stop()
    assert net.node.process.poll() is not None


def cli(*args):
    from coordination.cli.app import app

    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=True)
    return result


@pytest.fixture
def key_of(tmp_path):
    """account -> ["--key-file", PATH]: the account's key in a 0600 file (keys never go on argv)."""
    from coordination.chain.keys import write_key_file

    def key_file(account) -> list:
        return ["--key-file", write_key_file(tmp_path / "keys" / f"{account.address}.key", account.key)]

    return key_file


def test_deploy_stake_settle_claim_and_promote_on_anvil(net, tmp_path, key_of):
    w3, c = net.w3, net.deployment.clients(net.w3)
    deployer, v1, v2, peer_a, peer_b, staker = net.accounts
    dep_file = tmp_path / "deployment.json"
    net.deployment.save(dep_file)
    common = ["--rpc", net.rpc_url, "--deployment", dep_file]

    # validators stake and register through the CLI, then activate after the delay; peers post bonds
    for v in (v1, v2):
        result = cli("stake", "2000", *common, *key_of(v), "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["stake"] == 2000 * TOKEN
        result = cli("register-validator", *common, *key_of(v), "--json")
        assert result.exit_code == 0 and json.loads(result.output)["validator"] is False, result.output
    early = cli("activate-validator", *common, *key_of(v1))
    assert isinstance(early.exception, ChainError) and early.exception.error_name == "ActivationPending"
    advance_time(w3, 11)
    for v in (v1, v2):
        assert cli("activate-validator", *common, *key_of(v)).exit_code == 0
    for p in (peer_a, peer_b):
        assert cli("stake", "1", *common, *key_of(p)).exit_code == 0
    advance_time(w3, 1)

    # reverts decode on anvil too, including one bubbling from Staking through the ledger
    assert revert_of(lambda: c.staking.stake(0, sender=staker)) == ("ZeroAmount", ())
    c.token.approve(c.ledger.address, 1000 * TOKEN, sender=deployer)
    c.ledger.fund(1000 * TOKEN, sender=deployer)
    tree = StandardMerkleTree.of([(peer_a.address, 30), (peer_b.address, 10)], ["address", "uint256"])
    domain = c.ledger.domain()
    s = PeriodSettlement(run_key(RUN), 0, 0, 4, tree.root, 40, 400 * TOKEN, chain_now(w3) - 1)
    one = quorum_signatures([v1], lambda a: sign_period(a, domain, s))
    assert revert_of(lambda: c.ledger.submit_period(s, one, sender=deployer)) == (
        "QuorumNotReached",
        (2000 * TOKEN, -(-4000 * TOKEN * 6667 // 10_000)),
    )

    # settle with a quorum, wait out the window, claim with the CLI from a claim file
    sigs = quorum_signatures([v1, v2], lambda a: sign_period(a, domain, s))
    c.ledger.submit_period(s, sigs, sender=deployer)
    ticket = next(
        t for t in tickets_for(s, tree, chain_id=w3.eth.chain_id, ledger=c.ledger.address) if t.peer == peer_a.address
    )
    ticket_path = ticket.save(tmp_path / "claim.json")
    early = cli("claim", "--claim-file", ticket_path, *common, *key_of(peer_a))
    assert isinstance(early.exception, ChainError) and early.exception.error_name == "ChallengeWindowOpen"
    advance_time(w3, 31)
    before = c.token.balance_of(peer_a.address)
    result = cli("claim", "--claim-file", ticket_path, *common, *key_of(peer_b), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["amount"] == 300 * TOKEN
    assert c.token.balance_of(peer_a.address) == before + 300 * TOKEN

    # peer_b never claims: after the claim window anyone sweeps its share back to the pool
    pool = c.ledger.reward_pool()
    early = cli("sweep", "--period", 0, "--run-id", RUN, *common, *key_of(staker))
    assert isinstance(early.exception, ChainError) and early.exception.error_name == "ClaimWindowOpen"
    advance_time(w3, c.ledger.claim_window())
    result = cli("sweep", "--period", 0, "--run-id", RUN, *common, *key_of(staker), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["returned"] == 100 * TOKEN
    assert c.ledger.reward_pool() == pool + 100 * TOKEN

    # unstake + withdraw through the CLI
    key = key_of(staker)
    assert cli("stake", "500", *common, *key).exit_code == 0
    assert cli("unstake", "200", *common, *key).exit_code == 0
    advance_time(w3, 61)
    result = cli("withdraw", *common, *key, "--json")
    assert json.loads(result.output)["withdrawn"] == 200 * TOKEN

    # promotion: nominate, fix the seed a block later, record the eval, vote, queue, timelock, execute
    cid = "bafkrei-anvil-ckpt"
    c.registry.nominate(RUN, cid, keccak(text="weights"), sender=staker)
    advance_time(w3, 1)
    c.registry.fix_seed(RUN, cid, sender=deployer)
    root, t = keccak(text="records"), chain_now(w3) - 1
    message = {"checkpoint": cid, "seed": c.registry.eval_seed_int(RUN, cid), "correct": 3, "total": 4}
    message["recordsRoot"] = root
    domain = eval_domain(w3.eth.chain_id, c.registry.address)
    sigs = quorum_signatures(
        [v1, v2], lambda a: sign_struct(a, domain, "EvalAttestation", EVAL_ATTESTATION_FIELDS, message)
    )
    recorded = c.registry.record_eval(RUN, cid, 3, 4, root, t, sigs, sender=deployer)
    digest = c.registry.events("EvalRecorded", recorded)[0]["evalDigest"]
    advance_time(w3, 1)
    proposal = promotion_proposal(c.registry.address, RUN, cid, digest)
    pid = c.governor.propose(proposal, sender=staker)
    advance_time(w3, 6)
    c.governor.cast_vote(pid, Support.FOR, sender=v1)
    advance_time(w3, 61)
    assert c.governor.state(pid) == ProposalState.SUCCEEDED
    c.governor.queue(proposal, sender=deployer)
    with pytest.raises(ChainError) as early_exec:
        c.governor.execute(proposal, sender=deployer)
    assert early_exec.value.error_name == "TimelockUnexpectedOperationState"
    advance_time(w3, 21)
    c.governor.execute(proposal, sender=deployer)
    assert [ck.cid for ck in c.registry.lineage(RUN)] == [cid]


def test_cli_without_a_key_or_chain_says_what_to_do(net, tmp_path, monkeypatch):
    monkeypatch.delenv("HIVETUNE_KEY", raising=False)
    missing_key = cli("withdraw", "--rpc", net.rpc_url, "--deployment", tmp_path / "nope.json")
    assert "HIVETUNE_KEY" in str(missing_key.exception) and "--key-file" in str(missing_key.exception)
    monkeypatch.setenv("HIVETUNE_KEY", "0x" + "11" * 32)  # the other way to give a key
    net.deployment.save(tmp_path / "d.json")
    down = cli("withdraw", "--rpc", "http://127.0.0.1:9", "--deployment", tmp_path / "d.json")
    assert "no chain answers at http://127.0.0.1:9" in str(down.exception)
    other = json.loads((tmp_path / "d.json").read_text()) | {"chain_id": 1}
    (tmp_path / "other-chain.json").write_text(json.dumps(other))
    wrong = cli("withdraw", "--rpc", net.rpc_url, "--deployment", tmp_path / "other-chain.json")
    assert "is for chain 1 but" in str(wrong.exception)
    gone = json.loads((tmp_path / "d.json").read_text()) | {"registry": "0x" + "77" * 20}
    (tmp_path / "gone.json").write_text(json.dumps(gone))
    empty = cli("withdraw", "--rpc", net.rpc_url, "--deployment", tmp_path / "gone.json")
    assert "no contract code for registry" in str(empty.exception)


def test_devnet_command_writes_deployment_and_stops_anvil_on_sigint(tmp_path):
    if not HAS_ANVIL:
        pytest.skip("anvil not installed: run `make setup`")
    dep = tmp_path / "deployment.json"
    cmd = [sys.executable, "-m", "coordination.cli.app", "devnet", "--port", "0", "--json", "--deployment", str(dep)]
    err = open(tmp_path / "devnet.stderr", "w")  # a file, not a pipe nobody reads (a full pipe blocks the child)
    # started as a background job of a script would be: SIGINT inherited as ignored; Ctrl-C must still stop it
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, preexec_fn=ignore_sigint)
    try:
        info = json.loads(proc.stdout.readline())
        assert json.loads(dep.read_text())["staking"] == info["deployment"]["staking"]
        assert len(info["accounts"]) == 6 and info["accounts"][1]["tokens"] == 100_000 * TOKEN
        assert os.path.exists(f"/proc/{info['anvilPid']}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            printed = (tmp_path / "devnet.stderr").read_text()[-2000:]
            raise AssertionError(f"devnet ignored SIGINT: {printed}") from None
    assert not os.path.exists(f"/proc/{info['anvilPid']}") or _is_zombie(info["anvilPid"])


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_a_snapshot_is_taken_from_a_block_mined_now_not_from_the_last_transaction(net):
    """anvil mines only on transactions: `chain_now` stays at the last one; `mine_now` (what the demo's
    settlement takes its stake snapshot from) is the chain's time now."""
    import time

    from coordination.chain.clock import mine_now

    before = chain_now(net.w3)
    time.sleep(2.2)
    assert chain_now(net.w3) == before  # no transaction, no block: the latest block is stale
    assert mine_now(net.w3) >= before + 2
