"""Helpers for the swarm integration tests (not a test module): tiny PEFT model, fault injection, reaping."""

from __future__ import annotations

import enum
import os
import signal
import subprocess

import torch

from coordination.swarm.robust_averaging import RobustGradientAverager


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


class Fault(enum.Enum):
    NONE = "none"
    NAN = "nan"
    INF = "inf"
    HUGE_NORM = "huge_norm"


def corrupt_(tensors, fault: Fault) -> None:
    for t in tensors:
        if fault is Fault.NAN:
            t.view(-1)[::2] = float("nan")
        elif fault is Fault.INF:
            t.view(-1)[::3] = float("inf")
        elif fault is Fault.HUGE_NORM:
            t.mul_(1e4).add_(10.0)


def make_faulty(averager: RobustGradientAverager, fault: Fault) -> RobustGradientAverager:
    """Turn a peer's averager into one that sends corrupted gradients (bypassing the local clip honest peers apply).

    Patched on the instance, not subclassed: hivemind names its RPC handlers after the averager class, so a
    subclass could not even talk to honest peers.
    """
    load = averager.load_accumulators_into_averager_

    @torch.no_grad()
    def load_corrupted():
        load()
        with averager.get_tensors() as tensors:
            corrupt_(tensors, fault)

    averager.load_accumulators_into_averager_ = load_corrupted
    return averager


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
