"""Content-addressed base directories and the pins a run spec puts on them (no SmolLM2 load here)."""

import pytest

from coordination.errors import ConfigError
from trainer.base_models import (
    BUILTIN_BASES,
    BaseModelMismatchError,
    base_dir_cid,
    builtin_revision,
    verify_base_model,
)
from trainer.models import create_tiny_model, drop_writer_metadata

SMALL = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64)


def test_cid_is_a_function_of_the_bytes_and_names(tmp_path):
    a = create_tiny_model(tmp_path / "a", seed=3, **SMALL)
    b = create_tiny_model(tmp_path / "b", seed=3, **SMALL)
    c = create_tiny_model(tmp_path / "c", seed=4, **SMALL)
    assert base_dir_cid(a) == base_dir_cid(b) != base_dir_cid(c)
    assert base_dir_cid(a).startswith("bafyrei")
    (b / "config.json").write_text((b / "config.json").read_text() + " ")
    assert base_dir_cid(a) != base_dir_cid(b)
    (a / "config.json").rename(a / "config2.json")
    assert base_dir_cid(a) != base_dir_cid(create_tiny_model(tmp_path / "d", seed=3, **SMALL))


def test_the_cid_does_not_record_which_transformers_wrote_the_directory(tmp_path):
    import json

    a = create_tiny_model(tmp_path / "a", seed=3, **SMALL)
    cid = base_dir_cid(a)
    for name in ("config.json", "generation_config.json"):
        config = json.loads((a / name).read_text())
        assert "transformers_version" not in config and config  # dropped, the rest kept
        (a / name).write_text(json.dumps({**config, "transformers_version": "99.0.0"}, indent=2))
    assert base_dir_cid(a) != cid  # a newer transformers would write this
    drop_writer_metadata(a)
    assert base_dir_cid(a) == cid
    config = json.loads((a / "config.json").read_text())
    assert config["hidden_size"] == 32 and config["num_hidden_layers"] == 1


def test_verify_refuses_a_base_whose_cid_differs(tmp_path):
    path = create_tiny_model(tmp_path / "m", seed=0, **SMALL)
    cid = base_dir_cid(path)
    assert verify_base_model(str(path), expected_cid=cid) == path
    assert verify_base_model(str(path)) == path  # nothing pinned
    other = "bafyreidp7gatwyejddcjjsxeplkzlzf2o7u3xf32wdd6bllja7k6yoguja"
    with pytest.raises(BaseModelMismatchError, match=f"has CID {cid} but the spec pins {other}"):
        verify_base_model(str(path), expected_cid=other)


def test_verify_refuses_a_revision_it_cannot_honour(tmp_path):
    path = create_tiny_model(tmp_path / "m", seed=0, **SMALL)
    with pytest.raises(BaseModelMismatchError, match="local directory"):
        verify_base_model(str(path), revision="abc123")
    installed = builtin_revision("smollm2-135m-instruct")
    assert installed == BUILTIN_BASES["smollm2-135m-instruct"].version
    with pytest.raises(BaseModelMismatchError, match=f"revision {installed} is installed but the spec pins 9.9"):
        verify_base_model("smollm2-135m-instruct", revision="9.9")


def test_cli_prints_the_cid_and_refuses_a_mismatch(tmp_path):
    import json

    from typer.testing import CliRunner

    from coordination.cli.app import app

    path = create_tiny_model(tmp_path / "m", seed=1, **SMALL)
    runner = CliRunner()
    done = runner.invoke(app, ["base-model", str(path), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"base": str(path), "path": str(path), "cid": base_dir_cid(path)}
    bad = runner.invoke(app, ["base-model", str(path), "--cid", "bafyreiaaaa"])
    assert isinstance(bad.exception, ConfigError) and "but the spec pins bafyreiaaaa" in str(bad.exception)
