"""The command line against anvil: validate -> settle-sign -> settle -> payouts -> `hivetune claim --claim-file`."""

import json

import pytest
import yaml
from typer.testing import CliRunner

from coordination.chain.keys import write_key_file
from coordination.cli.app import app
from coordination.verify.payout import load_claim_file

pytestmark = [pytest.mark.chain, pytest.mark.slow]

REWARD = 10**18 + 3


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    from coordination.chain.deploy import TOKEN, DeployParams
    from coordination.chain.devnet import Devnet

    root = tmp_path_factory.mktemp("devnet")
    net = Devnet.start(
        accounts=7,
        params=DeployParams(
            min_validator_stake=1_000 * TOKEN, validator_quorum_bps=6_000, challenge_window=60, activation_delay=10
        ),
        deployment_path=root / "deployment.json",
    )
    try:
        from coordination.chain.sandbox import activate_validators

        c = net.deployment.clients(net.w3)
        for v in net.accounts[1:4]:
            c.token.approve(c.staking.address, 1_000 * TOKEN, sender=v)
            c.staking.stake(1_000 * TOKEN, sender=v)
            c.staking.register_validator(sender=v)
        for p in net.accounts[4:7]:
            c.token.approve(c.staking.address, 10 * TOKEN, sender=p)
            c.staking.stake(10 * TOKEN, sender=p)  # the peers' bonds
        activate_validators(net.w3, c.staking, [v.address for v in net.accounts[1:4]], sender=net.accounts[0])
        c.token.approve(c.ledger.address, REWARD, sender=net.accounts[0])
        c.ledger.fund(REWARD, sender=net.accounts[0])
        yield net, c, root
    finally:
        net.stop()


@pytest.fixture(scope="module")
def published(devnet):
    import torch
    from support.adversaries import Cheat, PeerContext, publish_as
    from support.honest_rollouts import RolloutPlan, generate_rollouts

    from coordination.attest.rollout_store import RolloutDirectory
    from coordination.chain.eip712 import run_key
    from coordination.swarm.runspec import load_run_spec
    from coordination.verify.policy_pool import BASE_CHECKPOINT
    from coordination.verify.run_facts import facts_for_run

    torch.set_num_threads(1)
    net, c, root = devnet
    run = root / "run.yaml"
    run.write_text(
        yaml.safe_dump(
            {
                "name": "devnet-attest",
                "task": {"name": "arithmetic", "seed": 2},
                "grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "max_completion_length": 4},
                "averaging": {"matchmaking_time": 1.0},
                "chain": {"rpc_url": net.rpc_url, "chain_id": net.deployment.chain_id},
            }
        )
    )
    spec = load_run_spec(run)
    facts = facts_for_run(spec, domain=c.ledger.domain().as_dict())
    model, tok = facts.load_policy(BASE_CHECKPOINT)
    store = RolloutDirectory(root / "records")
    units = {}  # verified completion tokens per peer: what a peer is paid for
    plays = [
        (net.accounts[4], Cheat.HONEST, 1),
        (net.accounts[5], Cheat.HONEST, 2),
        (net.accounts[6], Cheat.WRONG_PROMPTS, 1),
    ]
    for account, cheat, prompts in plays:
        plan = RolloutPlan(
            run_id=spec.run_id,
            epoch=0,
            peer=account.address,
            task_seed=2,
            num_prompts=prompts,
            group_size=2,
            max_new_tokens=4,
            temperature=1.0,
        )
        records = generate_rollouts(model, tok, facts.task, plan, reward_fn=facts.reward_fn)
        ctx = PeerContext(
            account, run_key(spec.run_id), facts.domain, BASE_CHECKPOINT, model, tok, facts.task, facts.reward_fn, 4
        )
        served, signed = publish_as(cheat, records, ctx, epoch=0)
        store.put(signed, served)
        units[account.address] = sum(r.completion_tokens for r in records)
    return run, units


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_validators_settle_by_cli_and_peers_see_and_claim_their_payouts(devnet, published):
    net, c, root = devnet
    (run, units), deployment = published, root / "deployment.json"
    reports, docs = [], []
    for i, v in enumerate(net.accounts[1:4]):
        key = write_key_file(root / f"v{i}.key", v.key)  # mode 0600: the CLI refuses a key others can read
        reports.append(root / f"verdicts-{i}.json")
        invoke(
            "validate",
            "--run",
            run,
            "--epoch",
            0,
            "--records-dir",
            root / "records",
            "--key-file",
            key,
            "--deployment",
            deployment,
            "--rollout-rate",
            1.0,
            "--out",
            reports[-1],
            "--json",
        )
    from coordination.chain.clock import chain_now

    snapshot = chain_now(net.w3) - 1  # one stake snapshot for every validator of the period
    for i in range(2):  # two of three validators are a 60% stake quorum
        docs.append(root / f"period-{i}.json")
        invoke(
            "settle-sign",
            "--run",
            run,
            "--period",
            0,
            "--first-epoch",
            0,
            "--last-epoch",
            0,
            "--snapshot",
            snapshot,
            "--payout",
            REWARD,
            *sum((["--verdicts", r] for r in reports), []),
            "--deployment",
            deployment,
            "--key-file",
            root / f"v{i}.key",
            "--out",
            docs[-1],
            # validator 0 re-runs every cited FRAUD check before co-signing; the cheater's evidence reproduces
            *(["--records-dir", root / "records"] if i == 0 else []),
        )
    rechecked = json.loads(docs[0].read_text())  # the re-checking signer reproduced the cited evidence itself
    assert [x["peer"] for x in rechecked["slashes"]] == [net.accounts[6].address]
    payer = write_key_file(root / "payer.key", net.accounts[0].key)
    result = json.loads(
        invoke(
            "settle",
            "--run",
            run,
            *sum((["--signatures", d] for d in docs), []),
            "--deployment",
            deployment,
            "--claims-dir",
            root / "claims",
            "--key-file",
            payer,
            "--json",
        )
    )
    honest, cheater = net.accounts[4:6], net.accounts[6]
    assert [s["peer"] for s in result["slashed"]] == [cheater.address]
    assert c.staking.stake_of(cheater.address) == 5 * 10**18
    from coordination.chain.clock import advance_time

    advance_time(net.w3, 61)
    table = {h.address: None for h in honest}
    for h in honest:
        rows = json.loads(
            invoke(
                "payouts",
                "--peer",
                h.address,
                "--claims-dir",
                root / "claims",
                "--deployment",
                deployment,
                "--rpc",
                net.rpc_url,
                "--json",
            )
        )
        assert [r["state"] for r in rows] == ["claimable"]
        table[h.address] = rows[0]["units"]
        assert load_claim_file(rows[0]["file"]).peer == h.address  # the file's proof leads to its root
        before = c.token.balance_of(h.address)
        paid = json.loads(
            invoke(
                "claim",
                "--claim-file",
                rows[0]["file"],
                "--rpc",
                net.rpc_url,
                "--deployment",
                deployment,
                "--key-file",
                write_key_file(root / f"{h.address}.key", h.key),
                "--json",
            )
        )
        assert paid["amount"] == rows[0]["amount"] == REWARD * rows[0]["units"] // rows[0]["totalUnits"]
        assert c.token.balance_of(h.address) - before == paid["amount"]  # gas is paid in ETH, not tokens
        again = json.loads(
            invoke(
                "payouts",
                "--peer",
                h.address,
                "--claims-dir",
                root / "claims",
                "--deployment",
                deployment,
                "--rpc",
                net.rpc_url,
                "--json",
            )
        )
        assert [r["state"] for r in again] == ["claimed"]
    # paid by verified completion tokens (the run id, hence the seeds and EOS draws, changes with anvil's port)
    assert table == {h.address: units[h.address] for h in honest}
    assert json.loads(invoke("payouts", "--peer", cheater.address, "--claims-dir", root / "claims", "--json")) == []
