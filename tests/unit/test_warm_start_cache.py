"""The warm-start cache (trainer.sft.ensure_warm_start) is keyed by everything that decides its weights,
the installed training libraries included: other releases train other weights from the same seed."""

import json

import trainer.models as models
import trainer.sft as sft


def test_a_warm_start_is_reused_under_the_same_libraries_and_rebuilt_under_others(monkeypatch, tmp_path):
    monkeypatch.setenv("HIVETUNE_HOME", str(tmp_path / "home"))
    trainings = []
    real_train = sft.train_sft

    def counted(*args, **kwargs):
        trainings.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(sft, "train_sft", counted)
    out = tmp_path / "warm"
    assert sft.ensure_warm_start("arithmetic", out, max_steps=2, batch_size=4) == out
    marker = json.loads((out / sft.MARKER).read_text())
    assert marker["versions"] == models.library_versions()
    assert set(marker["versions"]) == set(models.TRAINING_LIBRARIES)
    assert all(marker["versions"].values())

    sft.ensure_warm_start("arithmetic", out, max_steps=2, batch_size=4)
    assert len(trainings) == 1  # same settings, same libraries: the cached directory

    other = models.library_versions() | {"transformers": "0.0.1"}
    monkeypatch.setattr(models, "library_versions", lambda: other)
    sft.ensure_warm_start("arithmetic", out, max_steps=2, batch_size=4)
    assert len(trainings) == 2
    assert json.loads((out / sft.MARKER).read_text())["versions"] == other
