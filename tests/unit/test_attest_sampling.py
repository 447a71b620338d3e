"""Seeded, verifiable sampling and the shared log-prob function, on a real (random-init) tiny Qwen2."""

import math

import pytest
import torch

from coordination.attest.logprobs import completion_logits, completion_logprobs
from coordination.attest.seeded_sampling import (
    check_sampled_tokens,
    inverse_cdf,
    rollout_seed,
    sample_completion,
    token_interval,
    uniform,
)

PEER = "0x" + "11" * 20


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config

    torch.set_num_threads(1)
    tokenizer = build_char_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        tiny_config(
            tokenizer,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
        )
    )
    return model.eval(), tokenizer


def test_uniforms_are_deterministic_in_range_and_differ_across_seeds():
    a, b = rollout_seed("run", 1, PEER, 0, 0), rollout_seed("run", 2, PEER, 0, 0)
    us = [uniform(a, t) for t in range(200)]
    assert us == [uniform(a, t) for t in range(200)]
    assert all(0.0 <= u < 1.0 for u in us)
    assert abs(sum(us) / len(us) - 0.5) < 0.1
    assert uniform(a, 0) != uniform(b, 0)


def test_inverse_cdf_matches_the_token_interval():
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0])
    for u in (0.0, 0.05, 0.3, 0.7, 0.99):
        token = inverse_cdf(logits, u, 1.0)
        low, high = token_interval(logits, token, 1.0)
        assert low <= u < high


def test_logprobs_are_the_log_softmax_of_one_forward_pass(tiny):
    model, tok = tiny
    prompt, completion = (
        tok.encode("Q:12+30\n", add_special_tokens=False),
        tok.encode("<t>2+0", add_special_tokens=False),
    )
    lp = completion_logprobs(model, tok, "Q:12+30\n", completion)
    assert len(lp) == len(completion) and all(x < 0 for x in lp)
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    expected = [full[len(prompt) - 1 + t, c].item() for t, c in enumerate(completion)]
    assert lp == pytest.approx(expected, abs=1e-9)
    # probabilities of the whole vocabulary at each position sum to one
    logits = completion_logits(model, prompt, completion)
    assert torch.softmax(logits, -1).sum(-1).tolist() == pytest.approx([1.0] * len(completion), abs=1e-9)


def test_logprobs_at_temperature_are_of_the_scaled_logits(tiny):
    model, tok = tiny
    completion = tok.encode("<t>1", add_special_tokens=False)
    at_one, at_half = (completion_logprobs(model, tok, "Q:1+1\n", completion, temperature=t) for t in (1.0, 0.5))
    assert at_one != pytest.approx(at_half)


def test_honest_samples_verify_over_many_seeds(tiny):
    model, tok = tiny
    prompt = tok.encode("Q:47+38\n", add_special_tokens=False)
    for slot in range(25):
        seed = rollout_seed("run", 0, PEER, slot, 0)
        ids = sample_completion(
            model, prompt, seed=seed, max_new_tokens=12, temperature=1.0, eos_token_id=tok.eos_token_id
        )
        assert check_sampled_tokens(model, prompt, ids, seed=seed, temperature=1.0) == []


def test_fabricated_and_reseeded_completions_fail(tiny):
    model, tok = tiny
    prompt = tok.encode("Q:47+38\n", add_special_tokens=False)
    seed, other = rollout_seed("run", 0, PEER, 0, 0), rollout_seed("run", 1, PEER, 0, 0)
    fabricated = tok.encode("<t>7+8+0=15|5\n</t><a>85</a>", add_special_tokens=False)
    assert len(check_sampled_tokens(model, prompt, fabricated, seed=seed, temperature=1.0)) > len(fabricated) // 2
    resampled = sample_completion(model, prompt, seed=other, max_new_tokens=12, temperature=1.0, eos_token_id=None)
    assert check_sampled_tokens(model, prompt, resampled, seed=seed, temperature=1.0) != []


def test_a_random_model_gives_near_uniform_logprobs(tiny):
    model, tok = tiny
    lp = completion_logprobs(model, tok, "Q:1+1\n", tok.encode("abc", add_special_tokens=False))
    assert all(abs(x + math.log(len(tok))) < 1.0 for x in lp)
