"""An attested peer end to end on loopback: seeded GRPO training, receipts committing to the round contribution,
and a validator with the deployed checks (epoch board, canonical checkpoints, round membership) accepting them."""

import pytest
import torch
from eth_account import Account

from coordination.swarm.peer import PeerConfig, start_bootstrap
from coordination.swarm.runspec import run_spec_from_dict

pytestmark = [pytest.mark.network, pytest.mark.slow]

LOOPBACK = ("/ip4/127.0.0.1/tcp/0",)
PEER = Account.from_key("0x" + "5e" * 32)


def validate_from(dht, spec, store, epochs):
    """What `hivetune validate --initial-peers ...` does, on the peer's own DHT node (in process)."""
    from coordination.attest.dht_receipts import fetch_receipts
    from coordination.attest.p2p_serving import P2PRecordFetcher
    from coordination.chain.eip712 import attest_domain
    from coordination.swarm.epoch_board import EpochBoard
    from coordination.verify.run_facts import facts_for_run
    from coordination.verify.validator import Validator, validate_epochs

    published = {e: fetch_receipts(dht, spec.run_id, e) for e in epochs}
    fetch = P2PRecordFetcher.from_published(dht, prefix=spec.run_id, published=[p for ps in published.values()
                                                                                 for p in ps])  # fmt: skip
    board = EpochBoard(dht=dht, run_id=spec.run_id)
    facts = facts_for_run(spec, domain=attest_domain(chain_id=31337), store=store, dht=dht, board=board)
    validator = Validator(private_key="0x" + "6f" * 32, facts=facts, fetch=fetch, rollout_rate=1.0)
    return validate_epochs(validator, {e: [p.signed for p in ps] for e, ps in published.items()}), board


@pytest.mark.parametrize("delayed", [False, True], ids=["sync", "delayed_updates"])
def test_an_attested_peer_is_paid_for_each_epoch_whose_gradient_entered_the_round(tmp_path, monkeypatch, delayed):
    """Also with delayed updates: epoch 1's rollouts then come from state 0, and validators audit them under it."""
    from coordination.attest.receipts import contribution_digest
    from coordination.attest.rollout_store import RolloutDirectory
    from coordination.checkpoints.store import CheckpointStore
    from coordination.governance.joining import attested_peer

    monkeypatch.setenv("HIVETUNE_HOME", str(tmp_path / "home"))
    torch.set_num_threads(1)
    spec = run_spec_from_dict(
        {"grpo": {"per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 8,
                  "temperature": 0.7, "total_epochs": 2},
         "averaging": {"matchmaking_time": 1.0, "delayed_updates": delayed}}
    )  # fmt: skip
    store = CheckpointStore(tmp_path / "store")
    seen = {}

    def on_ready(result, peer_dht):  # the peer still serves; a validator joins as a DHT client
        from coordination.attest.dht_receipts import protect
        from coordination.swarm.dht_node import start_dht

        dht = start_dht(initial_peers=[str(m) for m in peer_dht.get_visible_maddrs()], client_mode=True)
        try:
            protect(dht)
            seen["report"], board = validate_from(dht, spec, CheckpointStore(tmp_path / "vstore"), [0, 1])
            seen["members"] = {e: board.round_of(e + 1)["members"] for e in (0, 1)}
        finally:
            dht.shutdown()

    with start_bootstrap(spec, host_maddrs=list(LOOPBACK)) as node:
        config = PeerConfig(initial_peers=tuple(node.maddrs), host_maddrs=LOOPBACK, max_epochs=2,
                            output_dir=str(tmp_path / "peer"), report_to="none", show_status=False)  # fmt: skip
        peer = attested_peer(spec, config, account=PEER, store=store, rollouts=RolloutDirectory(tmp_path / "r"),
                             start="base")  # fmt: skip
        peer.run(on_ready=on_ready)
    report, history = seen["report"], peer.hook.summary()["history"]
    assert [(v["status"], v["kind"]) for v in report["verdicts"]] == [("ACCEPTED", "NONE")] * 2, report["verdicts"]
    assert report["cost"]["forward_passes"] == 16  # every rollout of both epochs checked under its canonical CID
    for v, h in zip(report["verdicts"], history, strict=True):
        receipt = v["receipt_json"]["receipt"]
        assert receipt["checkpoint_cid"] == h["checkpoint"] and h["entered_round"]
        assert receipt["samples"] == 8 and receipt["contribution"] != "0x" + "00" * 32
        members = seen["members"][v["epoch"]]
        digests = {"0x" + contribution_digest(m["contribution"]).hex() for m in members}
        assert receipt["contribution"] in digests
    # the checkpoint each epoch's receipt names: epoch 1 under state 1 (sync) or under state 0 (delayed updates)
    assert (history[0]["checkpoint"] == history[1]["checkpoint"]) is delayed
    assert history[1]["checkpoint"] == (history[0]["checkpoint"] if delayed else history[0]["next_checkpoint"])
