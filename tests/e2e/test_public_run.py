"""The demo, shortened (recipes/configs/public_run_ci.yaml): a whole public run on one machine.

Asserts what a newcomer is promised: the promoted CID on chain is the checkpoint the peers trained,
the new peer starts from it (fetched by CID, verified), rewards were paid in proportion to verified
units, no honest peer was flagged, held-out accuracy after training beats the warm start, and every
process the demo started is gone.
"""

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.chain, pytest.mark.timeout(1200)]  # a whole run

CONFIG = Path(__file__).parents[2] / "recipes" / "configs" / "public_run_ci.yaml"


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    from recipes.public_run import run_demo
    from recipes.public_run.config import PublicRunConfig

    out = tmp_path_factory.mktemp("demo")
    cfg = PublicRunConfig.load(CONFIG, output_dir=str(out))
    return run_demo(cfg), out


def test_promoted_checkpoint_is_the_trained_one_and_the_newcomer_starts_from_it(summary):
    from coordination.checkpoints import CheckpointStore

    s, out = summary
    assert s["promoted"] == s["trained_checkpoint"]
    assert set(s["peer_checkpoints"]) == {s["trained_checkpoint"]}  # one canonical checkpoint, held by every peer
    assert s["epoch_cids"]["agree"] == s["epoch_cids"]["epochs"] > 0  # and one CID per epoch, every epoch
    assert s["newcomer_start"] == s["promoted"]
    report = CheckpointStore(out / "newcomer" / "store").verify(s["promoted"])
    assert report.ok, report.problems


def test_status_shows_the_executed_proposal_with_its_eval_score(summary):
    s, _ = summary
    chain = s["status"]["chain"]
    assert chain["promoted"] == s["promoted"]
    [proposal] = chain["proposals"]
    assert proposal["state"] == "executed" and proposal["cid"] == s["promoted"]
    assert proposal["eval"] == s["transparent_eval"].split(" on seed")[0] and proposal["for"] > 0


def test_rewards_follow_verified_units_exactly_and_nobody_honest_is_flagged(summary):
    s, _ = summary
    reward = 1_000 * 10**18
    total = sum(s["units"].values())
    assert total > 0
    for peer, units in s["units"].items():
        assert s["rewards"][peer] == reward * units // total
    assert all(counts["FRAUD"] == 0 for counts in s["verdicts"])
    # an honest peer is never flagged; a receipt whose gradient missed its round (NOT_IN_ROUND) is unpaid, not flagged
    assert s["honest_flagged"] == 0, s["verdict_kinds"]


def test_training_beats_the_warm_start_and_the_plot_exists(summary):
    s, out = summary
    assert s["accuracy_after"] > s["accuracy_before"]
    assert (out / "summary.png").stat().st_size > 0 and (out / "summary.json").exists()


def test_every_process_the_demo_started_is_stopped(summary):
    s, _ = summary
    assert s["pids"], "the demo should report the pids it started"
    for pid in s["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
