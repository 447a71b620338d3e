"""Two processes on loopback: one adds a LoRA checkpoint and serves it, the other fetches it by CID via the DHT,
loads it into the same tiny Qwen2 base and must produce logits identical to the source peer's.

The roles also run by hand:  python tests/integration/test_checkpoint_two_peers.py source|fetcher WORKDIR
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PREFIX = "two-peer-test"
LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
INPUT_IDS = [[1, 5, 9, 2, 33, 17, 4, 60]]


def tiny_base():
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=64,
    )
    return Qwen2ForCausalLM(config).eval()


def logits_of(model):
    import torch

    with torch.no_grad():
        return model(input_ids=torch.tensor(INPUT_IDS)).logits


def run_source(workdir: Path) -> None:
    import hivemind
    import torch
    from peft import LoraConfig, get_peft_model

    from coordination.checkpoints import CheckpointStore
    from coordination.checkpoints.server import CheckpointServer

    torch.set_num_threads(1)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(tiny_base(), config).eval()
    model.save_pretrained(workdir / "adapter")
    torch.save({"lora": logits_of(model), "base": logits_of(tiny_base())}, workdir / "source_logits.pt")
    store = CheckpointStore(workdir / "source_store")
    cid = store.add_adapter(workdir / "adapter", base_model="tiny-qwen2-test", step=1)
    dht = hivemind.DHT(host_maddrs=LOOPBACK, start=True)
    with CheckpointServer(dht=dht, store=store, prefix=PREFIX) as server:
        server.announce(cid)
        ready = {"cid": cid, "maddrs": [str(m) for m in dht.get_visible_maddrs()]}
        (workdir / "source.json.tmp").write_text(json.dumps(ready))
        os.replace(workdir / "source.json.tmp", workdir / "source.json")
        while True:
            time.sleep(1)


def run_fetcher(workdir: Path) -> None:
    import hivemind
    import torch
    from peft import PeftModel

    from coordination.checkpoints import CheckpointStore, resolve_adapter

    torch.set_num_threads(1)
    ready = json.loads((workdir / "source.json").read_text())
    dht = hivemind.DHT(host_maddrs=LOOPBACK, initial_peers=ready["maddrs"], start=True)
    try:
        store = CheckpointStore(workdir / "fetcher_store")
        adapter_dir = resolve_adapter(ready["cid"], store, dht=dht, prefix=PREFIX)
    finally:
        dht.shutdown()
    model = PeftModel.from_pretrained(tiny_base(), adapter_dir).eval()
    torch.save({"lora": logits_of(model), "adapter_dir": str(adapter_dir)}, workdir / "fetched_logits.pt")


def spawn_role(role: str, workdir: Path) -> subprocess.Popen:
    """Run a role in its own process group, so the DHT process and p2pd it forks can be killed with it."""
    command = [sys.executable, __file__, role, str(workdir)]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.fixture
def source_peer(tmp_path):
    proc = spawn_role("source", tmp_path)
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "source.json").exists():
            assert proc.poll() is None, f"source peer died: {proc.stderr.read()[-2000:]}"
            assert time.monotonic() < deadline, "source peer not ready in 180 s"
            time.sleep(0.2)
        yield tmp_path
    finally:
        kill_group(proc)


@pytest.mark.slow
@pytest.mark.network
def test_fetched_adapter_reproduces_the_source_peers_logits(source_peer):
    import torch

    workdir = source_peer
    fetcher = spawn_role("fetcher", workdir)
    try:
        _, stderr = fetcher.communicate(timeout=240)
    finally:
        kill_group(fetcher)
    assert fetcher.returncode == 0, stderr[-3000:]
    source = torch.load(workdir / "source_logits.pt")
    fetched = torch.load(workdir / "fetched_logits.pt")
    assert torch.equal(fetched["lora"], source["lora"])
    assert not torch.allclose(source["lora"], source["base"], atol=1e-4), "the LoRA must change the outputs"
    adapter_dir = Path(fetched["adapter_dir"])
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        assert (adapter_dir / name).read_bytes() == (workdir / "adapter" / name).read_bytes()
    assert not (workdir / "fetcher_store" / "quarantine").exists()


if __name__ == "__main__":
    role, workdir = sys.argv[1], Path(sys.argv[2])
    {"source": run_source, "fetcher": run_fetcher}[role](workdir)
