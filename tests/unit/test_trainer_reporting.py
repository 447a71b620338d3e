"""Reporting never blocks: wandb goes offline without a key; the resolved config is complete and written."""

import dataclasses
import json

from trainer.reporting import default_report_to, log_resolved_config, prepare_reporting, resolved_config


def test_wandb_goes_offline_without_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    prepare_reporting(["wandb"])
    import os

    assert os.environ["WANDB_MODE"] == "offline"


def test_wandb_left_alone_when_logged_in_or_not_requested(tmp_path, monkeypatch):
    import os

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    prepare_reporting("wandb")
    assert "WANDB_MODE" not in os.environ
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))
    prepare_reporting("none")
    assert "WANDB_MODE" not in os.environ


def test_a_peers_default_is_wandb_when_installed_and_none_without_it(monkeypatch):
    import sys

    assert default_report_to() == "wandb"  # installed in the dev environment
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    assert default_report_to() == "none"


@dataclasses.dataclass
class Inner:
    rate: float = 0.5
    names: tuple = ("a", "b")


def test_resolved_config_is_plain_and_written(tmp_path):
    from trl import GRPOConfig

    args = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, temperature=0.7, report_to="none")
    plain = log_resolved_config(tmp_path, grpo=args, inner=Inner())
    assert plain == {**resolved_config(grpo=args, inner=Inner()), "num_processes": 1}
    written = json.loads((tmp_path / "resolved_config.json").read_text())
    assert written["grpo"]["temperature"] == 0.7 and written["inner"] == {"rate": 0.5, "names": ["a", "b"]}
    assert written["grpo"]["num_generations"] == args.num_generations  # every field, not a summary
    assert len(written["grpo"]) == len(dataclasses.fields(GRPOConfig))
