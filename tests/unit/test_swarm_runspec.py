"""Run spec: canonical form, CID run id, strict parsing with one-line ConfigErrors, field diffs."""

import dataclasses
import hashlib
from pathlib import Path

import dag_cbor
import pytest
from eth_utils import keccak
from multiformats import CID, multihash

from coordination.errors import ConfigError
from coordination.swarm.runspec import RunSpec, diff_fields, load_run_spec, run_spec_from_dict

RUNS = sorted((Path(__file__).parents[2] / "recipes" / "runs").glob("*.yaml"))


def test_run_id_is_cidv1_dag_cbor_sha256_of_canonical_form():
    spec = run_spec_from_dict({"name": "x", "grpo": {"learning_rate": 1e-3}})
    cid = CID.decode(spec.run_id)
    assert cid.version == 1 and cid.codec.name == "dag-cbor" and cid.hashfun.name == "sha2-256"
    encoded = dag_cbor.encode(spec.canonical())
    assert cid.digest == multihash.digest(encoded, "sha2-256")
    assert multihash.unwrap(cid.digest) == hashlib.sha256(spec.encode()).digest()
    assert spec.run_id_bytes32 == keccak(text=spec.run_id) and len(spec.run_id_bytes32) == 32
    assert dag_cbor.decode(encoded) == spec.canonical()


def test_defaults_written_out_or_omitted_give_the_same_run_id():
    implicit = run_spec_from_dict({"name": "x"})
    explicit = run_spec_from_dict({"name": "x", "averaging": {"compression": "fp16"}, "lora": {"r": 16}})
    assert implicit.run_id == explicit.run_id


@pytest.mark.parametrize(
    "change",
    [
        {"name": "y"},
        {"grpo": {"learning_rate": 1e-3}},
        {"averaging": {"compression": "none"}},
        {"averaging": {"aggregator": "mean"}},
        {"lora": {"target_modules": ["q_proj"]}},
        {"chain": {"chain_id": 1}},
        {"initial_checkpoint": "bafy"},
        {"grpo": {"gradient_checkpointing": True}},
    ],
)
def test_any_field_change_changes_run_id(change):
    assert run_spec_from_dict({"name": "x", **change}).run_id != run_spec_from_dict({"name": "x"}).run_id


def test_int_for_float_field_is_the_same_spec():
    assert run_spec_from_dict({"grpo": {"beta": 0}}).run_id == run_spec_from_dict({"grpo": {"beta": 0.0}}).run_id


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"grpo": {"learning_rat": 1e-3}}, "unknown field(s) ['learning_rat']"),
        ({"nonsense": 1}, "unknown field(s) ['nonsense']"),
        ({"grpo": {"learning_rate": "fast"}}, "grpo.learning_rate='fast': expected float"),
        ({"grpo": 3}, "grpo: expected a mapping"),
        ({"averaging": {"compression": "zip"}}, "averaging.compression='zip'"),
        ({"averaging": {"compression": "8bit"}}, "averaging.compression='8bit'"),
        ({"averaging": {"aggregator": "median"}}, "averaging.aggregator='median'"),
        ({"averaging": {"trim_fraction": 0.5}}, "trim_fraction=0.5"),
        ({"grpo": {"lr_scheduler_type": "cosine"}}, "needs grpo.total_epochs"),
        ({"grpo": {"per_device_train_batch_size": 6, "num_generations": 4}}, "multiple of"),
        ({"grpo": {"gradient_checkpointing": "yes"}}, "grpo.gradient_checkpointing='yes': expected bool"),
        ({"grpo": {"gradient_checkpointing": 1}}, "grpo.gradient_checkpointing=1: expected bool"),
        ({"grpo": {"num_generations": True}}, "grpo.num_generations=True: expected int"),
        ([1, 2], "expected a YAML mapping"),
    ],
)
def test_bad_specs_raise_one_line_config_error(raw, fragment):
    with pytest.raises(ConfigError) as info:
        run_spec_from_dict(raw)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "run.yaml"
    bad.write_text("name: x\ngrpo: {learning_rate: [1,\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_run_spec(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_run_spec(tmp_path / "missing.yaml")


def test_diff_fields_names_exactly_the_differing_leaves():
    a = run_spec_from_dict({"name": "x"})
    b = dataclasses.replace(a, grpo=dataclasses.replace(a.grpo, learning_rate=9.0), initial_checkpoint="bafy")
    assert diff_fields(a.canonical(), b.canonical()) == ["grpo.learning_rate", "initial_checkpoint"]
    assert diff_fields(a.canonical(), a.canonical()) == []


@pytest.mark.parametrize("path", RUNS, ids=[p.name for p in RUNS])
def test_shipped_run_specs_parse(path):
    spec = load_run_spec(path)
    assert isinstance(spec, RunSpec) and spec.run_id.startswith("bafyrei")
    assert path.read_text().startswith("# hivetune ")  # first line is the launch command


@pytest.mark.parametrize("on", [False, True])
def test_peer_grpo_config_takes_gradient_checkpointing_from_the_spec(on, tmp_path):
    from coordination.swarm.peer import grpo_config_from_spec

    spec = run_spec_from_dict({"grpo": {"gradient_checkpointing": on, "max_completion_length": 24}})
    config = grpo_config_from_spec(spec, output_dir=str(tmp_path), report_to="none")
    assert config.gradient_checkpointing is on and config.max_completion_length == 24
    assert run_spec_from_dict({}).grpo.gradient_checkpointing is False  # off unless the run says so
