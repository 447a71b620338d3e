"""Whole peers as separate processes on loopback, driven through the CLI (`hivetune bootstrap/join/status`).

- three peers train 10 epochs together, fp16 on the wire: after every epoch all three hold the identical
  checkpoint CID (byte equality), every round had all three, and the adapter really moved;
- faults: a peer paused (SIGSTOP) past the straggler timeout mid-run, and a peer SIGKILLed and restarted:
  both end every later epoch on the same CID as the others; the restarted one resumes, it does not redo
  epochs; the paused one adopts the canonical state instead of applying local-only gradients.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from swarm_support import reap

pytestmark = [pytest.mark.network, pytest.mark.slow]

SPEC = {
    "name": "swarm-test",
    "model": {"base": "tiny"},
    "task": {"name": "arithmetic", "seed": 0},
    "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    "grpo": {"per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 56},
    "averaging": {"matchmaking_time": 2.0, "averaging_timeout": 20.0, "straggler_timeout": 8.0},
}
HIVETUNE = [sys.executable, "-m", "coordination.cli.app"]
LOOPBACK = ["--host-maddr", "/ip4/127.0.0.1/tcp/0"]


@pytest.fixture
def launch(tmp_path):
    """Start `hivetune ...` in its own process group, stdout+stderr to a file; all reaped by pid at the end."""
    procs = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HIVETUNE_HOME": str(tmp_path / "home")}

    def start(name, *args):
        log = open(tmp_path / f"{name}.log", "w")
        proc = subprocess.Popen(
            [*HIVETUNE, *args], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=tmp_path
        )
        proc.log_path = tmp_path / f"{name}.log"
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        reap(proc)


@pytest.fixture(scope="module")
def warm_base(tmp_path_factory):
    """A briefly SFT-warm-started tiny model, so GRPO rewards vary and gradients are non-zero."""
    from trainer.sft import ensure_warm_start

    return str(ensure_warm_start("arithmetic", tmp_path_factory.mktemp("warm") / "model", max_steps=60))


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def bootstrap_maddr(launch, run_yaml):
    boot = launch("bootstrap", "bootstrap", "--run", run_yaml, *LOOPBACK)
    text = lambda: boot.log_path.read_text()  # noqa: E731
    line = wait_for(
        lambda: next((x for x in text().splitlines() if x.startswith("/ip4/127.0.0.1")), None), 60, "maddr"
    )
    return line.strip()


def epoch_reached(proc, epoch: int) -> bool:
    return any(f"] epoch {e} |" in proc.log_path.read_text() for e in range(epoch, epoch + 50))


def join(launch, name, run_yaml, maddr, tmp_path, *extra):
    return launch(
        name, "join", "--run", run_yaml, "--initial-peers", maddr, *LOOPBACK, "--output-dir", str(tmp_path / name),
        "--report-to", "none", "--json", *extra,
    )  # fmt: skip


def final_summary(proc, timeout):
    assert proc.wait(timeout=timeout) == 0, proc.log_path.read_text()[-3000:]
    lines = [x for x in proc.log_path.read_text().splitlines() if x.startswith('{"peer_id"')]
    return json.loads(lines[-1])


def flags_raised(procs):
    """The accusations reducers logged in these peers' logs. (A round that failed because a peer was paused or
    killed is logged too, as a warning, but accuses nobody: the round is void for all and retried.)"""
    from coordination.swarm.consensus_averaging import FLAGGED

    return [x for p in procs for x in p.log_path.read_text().splitlines() if FLAGGED in x]


def adapter(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "adapter_model.safetensors"))


def write_spec(tmp_path, name, warm_base, **averaging):
    path = tmp_path / f"{name}.yaml"
    spec = {**SPEC, "model": {"base": warm_base}, "averaging": {**SPEC["averaging"], **averaging}}
    path.write_text(f"# hivetune join --run {name}.yaml --initial-peers ...\n" + yaml.safe_dump(spec))
    return str(path)


def lora_b_norm(adapter_dir):
    import torch

    weights = adapter(adapter_dir)
    return float(torch.cat([weights[n].flatten() for n in weights if "lora_B" in n]).norm())


@pytest.mark.timeout(900)
@pytest.mark.parametrize("delayed", [False, True], ids=["sync", "delayed_updates"])
def test_three_peers_hold_the_identical_checkpoint_after_every_epoch(launch, warm_base, tmp_path, delayed):
    """Also with delayed updates (each round runs while the next epoch computes on the state before it)."""
    run_yaml = write_spec(tmp_path, "three", warm_base, min_group=3, delayed_updates=delayed)
    maddr = bootstrap_maddr(launch, run_yaml)
    peers = [join(launch, name, run_yaml, maddr, tmp_path, "--max-epochs", "10") for name in "abc"]
    wait_for(lambda: all(epoch_reached(p, 1) for p in peers), 300, "all peers at epoch 1")
    status = subprocess.run(
        [*HIVETUNE, "status", "--run", run_yaml, "--initial-peers", maddr, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr[-2000:]
    assert len(json.loads(status.stdout.strip().splitlines()[-1])["peers"]) == 3
    summaries = [final_summary(p, 600) for p in peers]
    cids = [s["cids"] for s in summaries]
    assert sorted(map(int, cids[0])) == list(range(11))
    assert cids[0] == cids[1] == cids[2]  # one checkpoint per epoch, byte-identical on every peer
    assert len(set(cids[0].values())) == 11
    assert all(s["rejected_parts"] == 0 and s["local_steps"] == 10 for s in summaries)  # every round had all three
    assert not flags_raised(peers)  # none flagged
    assert lora_b_norm(summaries[0]["adapter_dir"]) > 1e-3, "no learning signal: identity would be trivial"
    check_updates_by_recomputation(tmp_path, run_yaml, cids[0])


def check_updates_by_recomputation(tmp_path, run_yaml, cids):
    """`hivetune verify-update`: every epoch follows from its parent and the committed contributions; a journal
    that names another contribution or claims another CID is flagged with the epoch."""
    import shutil

    union = tmp_path / "union"
    for name in "abc":  # a checker holding the blocks all three peers serve
        shutil.copytree(tmp_path / name / "checkpoints" / "blocks", union / "blocks", dirs_exist_ok=True)
    journal = tmp_path / "a" / "consensus.json"

    def verify(path):
        out = subprocess.run([*HIVETUNE, "verify-update", "--run", run_yaml, "--journal", str(path), "--store",
                              str(union), "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
        return out.returncode, [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")]

    code, verdicts = verify(journal)
    assert code == 0 and [v["epoch"] for v in verdicts] == list(range(1, 11))
    assert all(v["ok"] and v["recomputed"] == cids[str(v["epoch"])] for v in verdicts)
    tampered = json.loads(journal.read_text())
    rounds = tampered["rounds"]
    rounds["5"]["members"][0]["contribution"] = rounds["4"]["members"][0]["contribution"]  # another epoch's work
    rounds["8"]["cid"] = rounds["9"]["cid"]  # an announced CID that does not follow
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    code, verdicts = verify(tmp_path / "tampered.json")
    flagged = {v["epoch"] for v in verdicts if not v["ok"]}
    assert code == 1 and flagged == {5, 8}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("delayed", [False, True], ids=["sync", "delayed_updates"])
def test_paused_and_restarted_peers_end_every_later_epoch_on_the_canonical_cid(launch, warm_base, tmp_path, delayed):
    import signal

    run_yaml = write_spec(tmp_path, "faults", warm_base, min_group=2, delayed_updates=delayed)
    maddr = bootstrap_maddr(launch, run_yaml)
    a, b, c = (join(launch, n, run_yaml, maddr, tmp_path, "--max-epochs", "10") for n in "abc")
    wait_for(lambda: epoch_reached(c, 2), 300, "peer c at epoch 2")
    os.kill(c.pid, signal.SIGSTOP)  # a long pause (GC, swapping, a laptop lid): longer than straggler_timeout
    wait_for(lambda: epoch_reached(a, 4), 300, "a and b going on without c")
    os.kill(c.pid, signal.SIGCONT)
    wait_for(lambda: epoch_reached(b, 6), 300, "peer b at epoch 6")
    reap(b, sig=signal.SIGKILL)
    restart_epoch = max(e for e in range(11) if epoch_reached(a, e))
    b2 = join(launch, "b", run_yaml, maddr, tmp_path, "--max-epochs", "10")  # same output dir: its journal
    sa, sb, sc = final_summary(a, 600), final_summary(b2, 600), final_summary(c, 600)
    assert "adopting the canonical epoch" in c.log_path.read_text()  # it never kept local-only updates
    assert not flags_raised((a, b2, c))
    assert sb["local_steps"] <= 10 - restart_epoch + 1  # resumed at the swarm's epoch: nothing replayed
    assert sa["cids"]["10"] == sb["cids"]["10"] == sc["cids"]["10"]
    for epoch in range(0, 11):  # paused and restarted peers hold the canonical CID of every epoch they went through
        for other in (sb, sc):
            if str(epoch) in other["cids"]:
                assert other["cids"][str(epoch)] == sa["cids"][str(epoch)], epoch
    assert len(sc["cids"]) == 11  # the paused peer went through every epoch (adopting the ones it missed)


def test_multi_process_peer_only_rank0_joins_and_ranks_stop_together(launch, tmp_path):
    """`torchrun --nproc_per_node 2` (what accelerate launch does): rank 0 is the swarm member, rank 1 follows."""
    run_yaml = tmp_path / "tiny.yaml"
    spec = {**SPEC, "model": {"base": "tiny"}}
    run_yaml.write_text("# hivetune join --run tiny.yaml --initial-peers ...\n" + yaml.safe_dump(spec))
    maddr = bootstrap_maddr(launch, str(run_yaml))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HIVETUNE_HOME": str(tmp_path / "home")}
    with socket.socket() as probe:  # a free port from the OS for torchrun's rendezvous
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "coordination.cli.app", "--", "join", "--run", str(run_yaml), "--initial-peers", maddr, *LOOPBACK,
           "--max-epochs", "2", "--report-to", "none", "--json", "--output-dir", str(tmp_path / "ranks")]  # fmt: skip
    log = tmp_path / "ranks.log"
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                            start_new_session=True)  # fmt: skip
    try:
        assert proc.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        reap(proc)
    summaries = [json.loads(x) for x in log.read_text().splitlines() if x.startswith('{"peer_id"')]
    leader = [s for s in summaries if s["peer_id"]]
    follower = [s for s in summaries if not s["peer_id"]]
    assert len(leader) == 1 and len(follower) == 1
    assert leader[0]["epochs"] == 2 and follower[0]["local_steps"] == leader[0]["local_steps"]
    assert leader[0]["local_steps"] == 2  # one local step = one epoch


@pytest.mark.timeout(900)
def test_a_whole_delayed_swarm_killed_mid_run_resumes_from_its_journals(launch, warm_base, tmp_path):
    """Delayed updates, every peer SIGKILLed at once (possibly mid-round: each may have posted "working" on the
    epoch after its last state): restarted from their output dirs, they resume at their journals' epoch, compute
    it on the state before it and run its round, and end every later epoch on one CID, redoing nothing."""
    import signal

    run_yaml = write_spec(tmp_path, "restart", warm_base, min_group=2, delayed_updates=True)
    maddr = bootstrap_maddr(launch, run_yaml)
    a, b = (join(launch, n, run_yaml, maddr, tmp_path, "--max-epochs", "7") for n in "ab")
    wait_for(lambda: epoch_reached(a, 3) and epoch_reached(b, 3), 300, "both peers at epoch 3")
    for p in (a, b):  # both at once (reaping one first would give the other time to finish a round alone)
        os.killpg(p.pid, signal.SIGKILL)
    for p in (a, b):
        reap(p, sig=signal.SIGKILL)
    journals = [json.loads((tmp_path / n / "consensus.json").read_text())["epochs"] for n in "ab"]
    resumed = min(max(map(int, j)) for j in journals)
    a2, b2 = (join(launch, n, run_yaml, maddr, tmp_path, "--max-epochs", "7") for n in "ab")
    sa, sb = final_summary(a2, 600), final_summary(b2, 600)
    for s in (sa, sb):
        assert s["local_steps"] <= 7 - resumed  # resumed: epochs before the journal's are not redone
    assert all(str(e) in sa["cids"] and sa["cids"][str(e)] == sb["cids"][str(e)] for e in range(resumed + 1, 8))
    assert sa["cids"]["7"] == sb["cids"]["7"]
