"""Tiny model family: a lossless character tokenizer, seeded weights, hub-style directories, clear errors."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.errors import ModelNotFoundError
from trainer.models import CHARACTERS, build_char_tokenizer, create_tiny_model, load_model_and_tokenizer

TEXT = "Q:47+38\n<t>7+8+0=15|5\n</t><a>85</a> Use 3 8 10 to make 34 ~!@#$%^&*()_{}[]"


def test_char_tokenizer_round_trips_every_character():
    tokenizer = build_char_tokenizer()
    text = "".join(CHARACTERS) + TEXT
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text)  # exactly one token per character
    assert tokenizer.decode(ids) == text
    assert tokenizer(tokenizer.eos_token)["input_ids"] == [tokenizer.eos_token_id]


def test_tiny_model_directory_behaves_like_a_hub_model(tmp_path):
    path = create_tiny_model(tmp_path / "tiny", seed=0, num_hidden_layers=1, hidden_size=32, intermediate_size=64)
    tokenizer = AutoTokenizer.from_pretrained(path)  # what TRL and users do with a hub id
    assert tokenizer.decode(tokenizer(TEXT)["input_ids"]) == TEXT
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.vocab_size == len(tokenizer) and tokenizer.chat_template
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Q:1+2"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<user>Q:1+2\n<assistant>"


def test_weights_are_a_function_of_the_seed(tmp_path):
    small = dict(num_hidden_layers=1, hidden_size=32, intermediate_size=64)
    models = [
        load_model_and_tokenizer(create_tiny_model(tmp_path / f"m{i}", seed=s, **small))[0]
        for i, s in enumerate((7, 7, 8))
    ]
    a, b, c = (m.state_dict() for m in models)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_missing_model_is_one_clear_line(tmp_path):
    for name in (str(tmp_path / "no-model-here"), "some-org/not-cached-anywhere"):
        with pytest.raises(ModelNotFoundError) as info:
            load_model_and_tokenizer(name)
        message = str(info.value)
        assert message == (
            f"model '{name}' not found locally and the hub is unreachable: "
            "pass a local path or run `hivetune tiny-model`"
        )
