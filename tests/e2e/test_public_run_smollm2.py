"""`make demo MODEL=smollm2`, shortened: the whole public run on the built-in SmolLM2-135M-Instruct.

Marked `long` (out of `make test`): even at 2 epochs it loads the 135M model in every role's process
(2 peers, 2 validators, 2 eval attesters, a newcomer, the driver): 4 min 54 s on the 2-core box when
it was quiet, far more under load. Run it with `pytest --run-long tests/e2e/test_public_run_smollm2.py`.

Asserts what the tiny demo's e2e asserts, except learning (2 epochs of 8 completions move nothing
measurable): one CID per epoch, the promoted checkpoint is the trained one and the newcomer starts
from it, rewards follow verified units, no honest receipt flagged; plus the SmolLM2 plumbing: the run
spec pins the built-in base by package version and directory CID in fp32, and the instruct model
scores above zero before training (chat-template prompts, answers the reward parses).
"""

import os
from pathlib import Path

import pytest
import yaml

pytestmark = [
    pytest.mark.slow,
    pytest.mark.long,
    pytest.mark.network,
    pytest.mark.chain,
    pytest.mark.timeout(3600),
]

CONFIG = Path(__file__).parents[2] / "recipes" / "configs" / "public_run_smollm2.yaml"


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    from recipes.public_run import run_demo
    from recipes.public_run.config import PublicRunConfig

    out = tmp_path_factory.mktemp("demo_smollm2")
    cfg = PublicRunConfig.load(CONFIG, output_dir=str(out), epochs=2, eval_n=32, attest_eval_n=4)
    return run_demo(cfg), out


def test_the_run_is_on_the_pinned_smollm2_base_and_it_scores_before_training(summary):
    from trainer.base_models import SMOLLM2

    s, out = summary
    pinned = yaml.safe_load(CONFIG.read_text())["run"]["model"]["base_cid"]
    model = yaml.safe_load((out / "run.yaml").read_text())["model"]
    assert model == {"base": SMOLLM2, "revision": "0.1.2", "base_cid": pinned, "dtype": "float32"}
    assert s["model"] == SMOLLM2 and s["start"] == f"base {SMOLLM2}"
    assert s["accuracy_before"] > 0


def test_one_checkpoint_is_trained_promoted_and_joined(summary):
    from coordination.checkpoints import CheckpointStore

    s, out = summary
    assert s["promoted"] == s["trained_checkpoint"] and set(s["peer_checkpoints"]) == {s["promoted"]}
    assert s["epoch_cids"]["agree"] == s["epoch_cids"]["epochs"] > 0
    assert s["newcomer_start"] == s["promoted"]
    report = CheckpointStore(out / "newcomer" / "store").verify(s["promoted"])
    assert report.ok, report.problems


def test_rewards_follow_verified_units_and_nobody_honest_is_flagged(summary):
    s, _ = summary
    total = sum(s["units"].values())
    assert total > 0
    for peer, units in s["units"].items():
        assert s["rewards"][peer] == 1_000 * 10**18 * units // total
    assert s["honest_flagged"] == 0, s["verdict_kinds"]


def test_every_process_is_stopped(summary):
    s, _ = summary
    for pid in s["pids"]:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
