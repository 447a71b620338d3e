"""`hivetune validate` and `hivetune payouts` on a run.yaml with the built-in tiny model (no chain)."""

import json

import pytest
import yaml
from eth_account import Account
from typer.testing import CliRunner

from coordination.cli.app import app
from coordination.errors import ConfigError

pytestmark = pytest.mark.slow

HONEST = Account.from_key("0x" + "51" * 32)
CHEATER = Account.from_key("0x" + "52" * 32)
VALIDATOR_KEY = "0x" + "53" * 32


def contribution_cid(account) -> str:
    """The CID of the gradient contribution `account` sent to epoch 0's round (a stand-in block)."""
    from coordination.checkpoints.addressing import block_cid

    return str(block_cid(f"contribution of {account.address}".encode(), "raw"))


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    import torch
    from support.adversaries import Cheat, PeerContext, publish_as
    from support.honest_rollouts import RolloutPlan, generate_rollouts

    from coordination.attest.receipts import contribution_digest
    from coordination.attest.rollout_store import RolloutDirectory
    from coordination.chain.eip712 import attest_domain, run_key
    from coordination.swarm.runspec import load_run_spec
    from coordination.verify.policy_pool import BASE_CHECKPOINT
    from coordination.verify.run_facts import facts_for_run

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cli")
    run = root / "run.yaml"
    run.write_text(
        yaml.safe_dump(
            {
                "name": "cli-test",
                "task": {"name": "arithmetic", "seed": 5},
                "grpo": {"num_generations": 2, "per_device_train_batch_size": 2, "max_completion_length": 5},
                "averaging": {"matchmaking_time": 1.0},
            }
        )
    )
    spec = load_run_spec(run)
    facts = facts_for_run(spec, domain=attest_domain(chain_id=31337))
    model, tok = facts.load_policy(BASE_CHECKPOINT)
    store = RolloutDirectory(root / "records")
    for account, cheat in ((HONEST, Cheat.HONEST), (CHEATER, Cheat.FABRICATED_REWARDS)):
        plan = RolloutPlan(
            run_id=spec.run_id,
            epoch=0,
            peer=account.address,
            task_seed=5,
            num_prompts=1,
            group_size=2,
            max_new_tokens=5,
            temperature=1.0,
        )
        records = generate_rollouts(model, tok, facts.task, plan, reward_fn=facts.reward_fn)
        ctx = PeerContext(
            account, run_key(spec.run_id), facts.domain, BASE_CHECKPOINT, model, tok, facts.task, facts.reward_fn, 5,
            contribution=contribution_digest(contribution_cid(account)),
        )  # fmt: skip
        served, signed = publish_as(cheat, records, ctx, epoch=0)
        store.put(signed, served)
    return run, root


def test_validate_flags_the_cheater_only_and_writes_signed_verdicts(published, monkeypatch):
    run, root = published
    monkeypatch.setenv("HIVETUNE_KEY", VALIDATOR_KEY)
    out = root / "verdicts.json"
    result = CliRunner().invoke(
        app,
        [
            "validate",
            "--run",
            str(run),
            "--epoch",
            "0",
            "--records-dir",
            str(root / "records"),
            "--rollout-rate",
            "1.0",
            "--out",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    by_peer = {v["peer"]: v for v in report["verdicts"]}
    assert by_peer[HONEST.address]["status"] == "ACCEPTED"
    assert (by_peer[CHEATER.address]["status"], by_peer[CHEATER.address]["kind"]) == ("FRAUD", "WRONG_REWARD")
    assert {v["validator"] for v in report["verdicts"]} == {Account.from_key(VALIDATOR_KEY).address}
    assert report["cost"]["forward_passes"] == 2  # honest receipt: both rollouts recomputed; cheater stopped early


def test_validate_without_a_key_is_a_one_line_config_error(published, monkeypatch):
    run, root = published
    monkeypatch.delenv("HIVETUNE_KEY", raising=False)
    result = CliRunner().invoke(app, ["validate", "--run", str(run), "--epoch", "0", "--records-dir", str(root)])
    assert isinstance(result.exception, ConfigError) and "--key-file" in str(result.exception)


def test_validate_with_a_records_dir_that_does_not_exist_refuses_instead_of_signing_an_empty_report(
    published, tmp_path, monkeypatch
):
    run, _ = published
    monkeypatch.setenv("HIVETUNE_KEY", VALIDATOR_KEY)
    out = tmp_path / "verdicts.json"
    missing = tmp_path / "no-such-records"
    argv = ["validate", "--run", str(run), "--epoch", "0", "--records-dir", str(missing), "--out", str(out)]
    result = CliRunner().invoke(app, argv)
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception).startswith(f"--records-dir {missing} is not a directory: pass the folder")
    assert not out.exists()


def test_validate_has_no_free_sampling_mode_and_checks_the_eval_dtype(tmp_path, monkeypatch):
    monkeypatch.setenv("HIVETUNE_KEY", VALIDATOR_KEY)
    run = tmp_path / "run.yaml"
    run.write_text("name: x\n")
    base = ["validate", "--run", str(run), "--epoch", "0", "--records-dir", str(tmp_path)]
    result = CliRunner().invoke(app, [*base, "--sampling", "free"])
    assert result.exit_code != 0 and "--sampling" in result.output  # the option no longer exists
    result = CliRunner().invoke(app, [*base, "--eval-dtype", "fp16"])
    assert isinstance(result.exception, ConfigError) and "--eval-dtype" in str(result.exception)


def test_payouts_lists_a_peers_claim_files(tmp_path):
    from coordination.chain.claims import tickets_for, write_claim_files
    from coordination.chain.eip712 import PeriodSettlement
    from coordination.verify.payout import contribution_tree

    table = {HONEST.address: 30, CHEATER.address: 10}
    tree = contribution_tree(table)
    for period in (1, 0):
        s = PeriodSettlement(b"\x01" * 32, period, 2 * period, 2 * period + 1, tree.root, 40, 1001, 1_700_000_000)
        write_claim_files(tickets_for(s, tree, chain_id=31337, ledger="0x" + "00" * 20), tmp_path)
    result = CliRunner().invoke(app, ["payouts", "--peer", HONEST.address, "--claims-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.output)
    assert [(r["period"], r["units"], r["amount"], r["state"]) for r in got] == [
        (0, 30, 750, "unknown"),
        (1, 30, 750, "unknown"),
    ]


@pytest.mark.network
def test_validate_reads_receipts_from_the_dht_and_records_over_libp2p(published, monkeypatch):
    import hivemind

    from coordination.attest.dht_receipts import publish_receipt
    from coordination.attest.p2p_serving import RolloutServer
    from coordination.attest.rollout_store import RolloutDirectory
    from coordination.chain.eip712 import run_key
    from coordination.swarm.epoch_board import EpochBoard
    from coordination.swarm.runspec import load_run_spec
    from coordination.verify.policy_pool import BASE_CHECKPOINT

    run, root = published
    spec = load_run_spec(run)
    store = RolloutDirectory(root / "records")
    monkeypatch.setenv("HIVETUNE_KEY", VALIDATOR_KEY)
    peer_dht = hivemind.DHT(host_maddrs=["/ip4/127.0.0.1/tcp/0"], start=True)
    try:
        # the swarm's epoch board: epoch 0 was trained from the base, and both peers' contributions entered its round
        board = EpochBoard(dht=peer_dht, run_id=spec.run_id)
        peer_id = peer_dht.peer_id.to_base58()
        assert board.announce(0, cid=BASE_CHECKPOINT, group=[board.owner], peer_id=peer_id, contribution=None)
        members = [{"peer_id": peer_id, "address": a.address, "contribution": contribution_cid(a), "weight": 2}
                   for a in (HONEST, CHEATER)]  # fmt: skip
        assert board.announce(1, cid="bafy-epoch-1", group=[board.owner], peer_id=peer_id, contribution=None,
                              members=members, parent=BASE_CHECKPOINT)  # fmt: skip
        with RolloutServer(dht=peer_dht, store=store, prefix=spec.run_id):
            for signed in store.receipts(run_key(spec.run_id).hex(), 0):
                assert publish_receipt(peer_dht, spec.run_id, 0, signed, maddrs=peer_dht.get_visible_maddrs())
            maddr = str(peer_dht.get_visible_maddrs()[0])
            result = CliRunner().invoke(
                app,
                [
                    "validate",
                    "--run",
                    str(run),
                    "--epoch",
                    "0",
                    "--initial-peers",
                    maddr,
                    "--rollout-rate",
                    "1.0",
                    "--json",
                ],
            )
    finally:
        peer_dht.shutdown()
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert {v["peer"]: v["status"] for v in report["verdicts"]} == {
        HONEST.address: "ACCEPTED",
        CHEATER.address: "FRAUD",
    }
