"""The validator's fast paths rule exactly as the plain ones: batched forward passes, batched audits of many
receipts, the hand-encoded digests, the in-memory checkpoint read, the direct adapter install."""

import random

import pytest
import torch
from eth_utils import keccak as eth_keccak

from coordination.attest.logprobs import completion_logits, completion_logits_batch
from coordination.attest.records import MalformedRecord, RolloutRecord, _int_array_tail, _word, quantize_logprobs
from coordination.attest.seeded_sampling import mismatched_positions, rollout_seed, sample_completion
from coordination.chain.hashing import keccak
from coordination.verify.audit import batched_logits
from coordination.verify.run_facts import EVAL_TOLERANCES

CDF_TOL, MILLI_TOL = EVAL_TOLERANCES["fp32"]
TEMPERATURE = 0.7


@pytest.fixture(scope="module")
def model_and_tok():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    torch.manual_seed(5)
    config = tiny_config(tok, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         intermediate_size=128)  # fmt: skip
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(AutoModelForCausalLM.from_config(config), lora).eval(), tok


def seeded_rows(model, tok, n: int):
    """n (prompt ids, seeded completion ids, seed) of different prompt and completion lengths."""
    rng, rows = random.Random(0), []
    for i in range(n):
        prompt = tok(f"Q:{rng.randrange(10 ** rng.randrange(1, 6))}+{i}=")["input_ids"]
        seed = rollout_seed("bafy-run", 1, "0x" + "11" * 20, i, 0)
        ids = sample_completion(model, prompt, seed=seed, max_new_tokens=rng.randrange(2, 24),
                                temperature=TEMPERATURE, eos_token_id=None)  # fmt: skip
        rows.append((prompt, ids, seed))
    return rows


def logprobs_milli(logits, ids):
    logp = torch.log_softmax(logits / TEMPERATURE, dim=-1)
    return quantize_logprobs(logp.gather(1, torch.tensor(ids).unsqueeze(1)).squeeze(1).tolist())


@pytest.mark.parametrize("max_tokens", [10**6, 64])  # one padded pass; several passes (rows grouped by length)
def test_batched_logits_are_the_unbatched_ones_within_the_calibrated_tolerance(model_and_tok, max_tokens):
    model, tok = model_and_tok
    rows = seeded_rows(model, tok, 12)
    batched = batched_logits(model, [(p, c) for p, c, _ in rows], max_tokens=max_tokens)
    assert len({len(p) for p, _, _ in rows}) > 1 and len({len(c) for _, c, _ in rows}) > 1  # padding is exercised
    for (prompt, ids, seed), got in zip(rows, batched, strict=True):
        alone = completion_logits(model, prompt, ids)
        assert got.shape == alone.shape == (len(ids), alone.shape[1])
        assert torch.allclose(got, alone, atol=1e-4, rtol=0), (got - alone).abs().max()
        worst = max(abs(a - b) for a, b in zip(logprobs_milli(got, ids), logprobs_milli(alone, ids), strict=True))
        assert worst <= 1 < MILLI_TOL  # rounding at most
        assert mismatched_positions(got, ids, seed=seed, temperature=TEMPERATURE, cdf_tolerance=CDF_TOL) == []


def test_a_tampered_row_in_a_batch_fails_and_only_it(model_and_tok):
    model, tok = model_and_tok
    rows = seeded_rows(model, tok, 8)
    prompt, ids, seed = rows[5]
    ids = list(ids)
    ids[len(ids) // 2] = (ids[len(ids) // 2] + 7) % model.config.vocab_size  # one token not its seeded draw
    rows[5] = (prompt, ids, seed)
    logits = completion_logits_batch(model, [p for p, _, _ in rows], [c for _, c, _ in rows])
    bad = [i for i, ((_, c, s), lg) in enumerate(zip(rows, logits, strict=True))
           if mismatched_positions(lg, c, seed=s, temperature=TEMPERATURE, cdf_tolerance=CDF_TOL)]  # fmt: skip
    assert bad == [5]


def test_abi_words_and_keccak_are_the_reference_encodings():
    values = [0, 1, -1, 2**63, -(2**63) - 1, 2**255 - 1, -(2**255), 2**256 + 5, -(2**300), 12345, -987]
    assert _int_array_tail(values) == _word(len(values)) + b"".join(_word(v) for v in values)
    assert _int_array_tail([]) == _word(0)
    for data in (b"", b"x", bytes(range(256)) * 3):
        assert keccak(data) == eth_keccak(data)


def test_record_parsing_still_rejects_what_it_rejected():
    good = RolloutRecord.build(slot=0, generation=1, task_seed=2, task_index=3, prompt="p", completion="ab",
                               completion_ids=[4, 5], reward=0.5, logprobs=[-0.1, -2.0]).to_json()  # fmt: skip
    good = dict(good, completion_ids=list(good["completion_ids"]), logprobs_milli=list(good["logprobs_milli"]))
    assert RolloutRecord.from_json(good).completion_ids == (4, 5)
    for field, value in [("completion_ids", [4, True]), ("completion_ids", [4, -1]), ("completion_ids", [4.0, 5]),
                         ("logprobs_milli", [1, 2**255]), ("logprobs_milli", ["1", 2]), ("logprobs_milli", [None]),
                         ("prompt_digest", "0x" + "g" * 64), ("prompt_digest", "0x" + "٣" * 64)]:  # fmt: skip
        with pytest.raises(MalformedRecord):
            RolloutRecord.from_json(dict(good, **{field: value}))


def test_in_memory_checkpoint_reads_are_verified_like_a_checkout(tmp_path):
    from coordination.checkpoints.store import CheckpointStore
    from coordination.errors import CheckpointError

    src = tmp_path / "adapter"
    src.mkdir()
    (src / "adapter_config.json").write_text('{"r": 8}')
    (src / "adapter_model.safetensors").write_bytes(random.Random(1).randbytes(3 << 19))  # > 1 MiB: 2 chunks
    store = CheckpointStore(tmp_path / "store")
    cid = store.add_adapter(src, base_model="tiny")
    files = store.read_files(cid)
    out = store.get(cid, tmp_path / "out")
    assert {n: (out / n).read_bytes() for n in files} == files
    assert set(store.read_files(cid, ["adapter_config.json"])) == {"adapter_config.json"}
    with pytest.raises(CheckpointError):
        store.read_files(cid, ["nope.bin"])
    chunk = next(p for p in (store.root / "blocks").rglob("*") if p.is_file() and p.stat().st_size == 1 << 20)
    chunk.write_bytes(b"\0" * (1 << 20))  # a corrupted chunk is caught, never returned
    with pytest.raises(CheckpointError):
        store.read_files(cid)
