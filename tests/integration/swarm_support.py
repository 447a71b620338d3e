"""Helpers for the swarm integration tests (not a test module): tiny PEFT model, reaping."""

from __future__ import annotations

import os
import signal
import subprocess

import torch


def tiny_peft_model(seed: int = 0, vocab: int = 40):
    """A 2-layer Qwen2 (hidden 32) with LoRA (r=4, non-zero init) on q/v projections, identical for equal seeds."""
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    return get_peft_model(Qwen2ForCausalLM(config), lora)


def reap(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop a peer process and its whole process group (hivemind's p2pd daemons included), by pid."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (p2pd children)
    except ProcessLookupError:
        pass
