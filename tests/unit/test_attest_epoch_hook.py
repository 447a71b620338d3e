"""The swarm trainer's on_epoch_end hook: seeded samples become records unchanged; receipts a validator accepts."""

import copy
import hashlib
from types import SimpleNamespace

import pytest
import torch
from eth_account import Account

from coordination.attest.assignment import assigned_indices
from coordination.attest.epoch_hook import EpochAttester, lora_state_loaded
from coordination.attest.logprobs import encode_prompt
from coordination.attest.rollout_store import RolloutDirectory
from coordination.attest.rollouts import task_reward
from coordination.attest.seeded_sampling import rollout_seed
from coordination.chain.eip712 import attest_domain, run_key
from coordination.verify.rulings import Kind
from coordination.verify.run_facts import RunFacts
from coordination.verify.validator import Validator
from trainer.seeded_generation import seeded_generate
from trainer.seeded_grpo import SeededSample

RUN = "bafy-hook-run"
DOMAIN = attest_domain(chain_id=31337)
PEER = Account.from_key("0x" + "66" * 32)


@pytest.fixture(scope="module")
def peft_tiny():
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config
    from trainer.tasks import get_task

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    torch.manual_seed(2)
    base = AutoModelForCausalLM.from_config(
        tiny_config(
            tok,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
        )
    )
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    return model, tok, get_task("arithmetic", digits=2)


CONTRIBUTION = "bafkreif2pall7dybz7vecqka3zo24irdwabwdi4wc55jznaq75q7eaavvu"  # sha2-256 of b"abc"


def epoch_record(model, tok, task, epoch, *, off_assignment=False):
    """What SwarmGRPOTrainer hands to on_epoch_end: seeded samples drawn under the epoch-start state."""
    reward = task_reward(task)
    samples = []
    for slot, index in enumerate(assigned_indices(RUN, epoch, PEER.address, 2)):
        index = index + 1 if off_assignment else index
        sample = task.sample(4, index)
        prompt = task.prompt(sample)
        row = {"prompt": prompt, "seed": 4, "index": index, "slot": slot}
        for g in range(2):
            seed = rollout_seed(RUN, epoch, PEER.address, slot, g)
            ids, lps = seeded_generate(model, [encode_prompt(tok, prompt)], [seed], max_new_tokens=32,
                                       temperature=1.0, eos_token_ids=[tok.eos_token_id])  # fmt: skip
            text = tok.decode(ids[0], skip_special_tokens=True)
            samples.append(SeededSample(epoch, row, g, seed, encode_prompt(tok, prompt), ids[0], lps[0],
                                        reward(text, sample)))  # fmt: skip
    start = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    with torch.no_grad():  # the swarm already stepped: the model is at epoch + 1
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.5)
    outcome = SimpleNamespace(contribution=CONTRIBUTION, entered=True, start_cid=f"bafy-epoch{epoch}")
    return SimpleNamespace(epoch=epoch, rollouts=[], seeded=samples, adapter_state=start, model=model,
                           peer_id="Qm", stats={}, outcome=outcome)  # fmt: skip


def facts_with(model, tok, task):
    return RunFacts(
        run_id=RUN,
        run_id_bytes32=run_key(RUN),
        domain=DOMAIN,
        task=task,
        task_seed=4,
        reward_fn=task_reward(task),
        group_size=2,
        max_new_tokens=32,
        temperature=1.0,
        load_policy=lambda cid: (model, tok),
    )


def test_hook_records_verify_under_the_epoch_start_state_only(peft_tiny, tmp_path):
    model, tok, task = peft_tiny
    store = RolloutDirectory(tmp_path)
    attester = EpochAttester(
        account=PEER,
        run_id=RUN,
        domain=DOMAIN,
        task=task,
        tokenizer=tok,
        store=store,
        checkpoint_cid=lambda e: f"bafy-epoch{e}",
    )
    start_model = copy.deepcopy(model)
    record = epoch_record(model, tok, task, epoch=3)
    attester(record)
    ((epoch, signed),) = attester.published
    assert epoch == 3 and signed.receipt.samples == 4 and store.receipts(run_key(RUN).hex(), 3) == [signed]
    assert signed.receipt.contribution == hashlib.sha256(b"abc").digest()
    served = [r for r, _ in store.fetch(signed)]
    assert [list(r.completion_ids) for r in served] == [s.completion_ids for s in record.seeded]  # ids unchanged
    with lora_state_loaded(start_model, record.adapter_state):
        good = Validator(
            private_key="0x" + "77" * 32, facts=facts_with(start_model, tok, task), fetch=store.fetch, rollout_rate=1.0
        )
        assert good.find(signed, 3) is None
    stale = Validator(
        private_key="0x" + "77" * 32, facts=facts_with(model, tok, task), fetch=store.fetch, rollout_rate=1.0
    )
    assert stale.find(signed, 3).kind in (Kind.FABRICATED_COMPLETION, Kind.WRONG_LOGPROBS)


def test_hook_refuses_prompts_outside_the_assignment(peft_tiny, tmp_path):
    model, tok, task = peft_tiny
    attester = EpochAttester(
        account=PEER,
        run_id=RUN,
        domain=DOMAIN,
        task=task,
        tokenizer=tok,
        store=RolloutDirectory(tmp_path),
        checkpoint_cid=lambda e: "bafy",
    )
    with pytest.raises(ValueError, match="assigned_indices"):
        attester(epoch_record(model, tok, task, epoch=1, off_assignment=True))
