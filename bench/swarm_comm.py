"""Benchmark: the real peer process (`hivetune join`) on shaped links: bytes per epoch and compute utilization.

    sudo PYTHONPATH=$PWD .venv/bin/python bench/swarm_comm.py       # 2 peers x {unshaped, 100, 10} Mbit/s x 7 epochs
    sudo PYTHONPATH=$PWD .venv/bin/python bench/swarm_comm.py --rates 100 --epochs 5 --repeats 1
    sudo PYTHONPATH=$PWD .venv/bin/python bench/swarm_comm.py --rates 100 --accumulation 4 --name swarm_comm_acc4
    sudo PYTHONPATH=$PWD .venv/bin/python bench/swarm_comm.py --rates 100 10 --modes sync delayed --name swarm_comm_dpu

The demo's run (recipes/configs/public_run.yaml: its warm start, LoRA r=16 on all 7 projections of the tiny model,
GRPO and averaging settings) is run by `--peers` `hivetune join` processes (plain peers, no chain) around a
`hivetune bootstrap` node, each process in its own network namespace, joined to a hub namespace (a Linux bridge) by
a veth pair; both ends of every veth are shaped with a `tc tbf` token bucket at the link rate (this kernel has no
netem), so each process uploads and downloads at most B; `0` = the same namespaces unshaped. The script creates
and removes every namespace itself (also on Ctrl-C / failure); no traffic leaves them. Settings are interleaved
(repeat 1 of every rate, then repeat 2, ...), since the CPU is shared with whatever else runs on the box.

Measured per peer and epoch, from the peer itself (its `--json` summary, `epoch_times`; coordination/swarm/
epoch_timing.py): wall time between epoch boundaries, generation (sampling + rewards), backward (loss forward +
backward), the consensus round's phases (commit, straggler wait, matchmaking + all-reduce, AdamW + state save +
announce, waiting for the group's announcements, adopting) and the rest; and from outside: bytes sent and received
by the peer's namespace (`/proc/<pid>/net/dev`, all of its traffic: gradients, DHT, epoch board, any state fetch),
sampled every 0.1 s and interpolated at the epoch boundaries. The first `--warmup` rounds are not counted (their
epochs' rows: epoch k's in sync mode, k+1's with delayed updates, whose row of epoch k waits for round k-1), nor the
last `--cooldown` epochs (with delayed updates the last round is drained synchronously: a run's end, not its steady
state).

`--modes sync delayed` runs both round protocols side by side (interleaved with the rates and repeats): `sync`, the
round of epoch k between epoch k's compute and epoch k+1's; `delayed`, the run spec's `averaging.delayed_updates`
(hivemind's delayed parameter updates: the round of epoch k runs in the background while epoch k+1 computes on
state k), so the round's phases overlap compute and only the time `step()` waits for it costs compute time.

Reported per rate: bytes per epoch / S (S = adapter bytes on the wire, fp16), utilization = (generation + backward)
/ wall (mean, 95% bootstrap CI over epochs; the peers of one epoch are resampled together), and the mean time split.
Goal (issue 10): utilization >= 0.9 at 100 Mbit/s. Results -> bench/results/swarm_comm.{json,png}.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
HUB = "hvt-hub"
SUBNET = "10.77.0"
PHASES = ("commit", "wait_group", "allreduce", "save", "resolve", "wait_canonical", "adopt")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def ns_name(i: int) -> str:
    return f"hvt-p{i}"


def create_namespaces(n: int, rate_mbit: int) -> None:
    """Hub namespace with a bridge; process i in its own namespace at 10.77.0.(i+1) over a (shaped) veth."""
    remove_namespaces()
    sh("ip", "netns", "add", HUB)
    sh("ip", "netns", "exec", HUB, "ip", "link", "add", "br0", "type", "bridge")
    sh("ip", "netns", "exec", HUB, "ip", "link", "set", "br0", "up")
    for i in range(n):
        ns, inner, outer = ns_name(i), f"hvp{i}", f"hvh{i}"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
        sh("ip", "link", "set", inner, "netns", ns)
        sh("ip", "link", "set", outer, "netns", HUB)
        sh("ip", "netns", "exec", HUB, "ip", "link", "set", outer, "master", "br0", "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", inner)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        if rate_mbit > 0:
            for where, dev in ((ns, inner), (HUB, outer)):  # upload and download of process i
                sh("ip", "netns", "exec", where, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
                   "rate", f"{rate_mbit}mbit", "burst", "64kb", "latency", "100ms")  # fmt: skip


def remove_namespaces() -> None:
    for ns in [HUB, *(ns_name(i) for i in range(8))]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def net_bytes(pid: int) -> tuple[int, int] | None:
    """(rx, tx) bytes of every non-loopback interface in the network namespace of process `pid`."""
    try:
        lines = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    except OSError:
        return None
    rx = tx = 0
    for line in lines:
        name, data = line.split(":", 1)
        if name.strip() != "lo":
            fields = data.split()
            rx, tx = rx + int(fields[0]), tx + int(fields[8])
    return rx, tx


def interpolate(samples: list[tuple[float, int, int]], t: float) -> tuple[float, float]:
    """(rx, tx) at unix time t, linear between the two nearest samples (clamped at the ends)."""
    if t <= samples[0][0]:
        return samples[0][1], samples[0][2]
    for (t0, rx0, tx0), (t1, rx1, tx1) in zip(samples, samples[1:], strict=False):
        if t0 <= t <= t1:
            w = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
            return rx0 + w * (rx1 - rx0), tx0 + w * (tx1 - tx0)
    return samples[-1][1], samples[-1][2]


def demo_spec(peers: int, accumulation: int = 1, delayed: bool = False) -> dict:
    """The demo's run (its warm start, LoRA, GRPO, averaging), plain: no chain; every round waits for all peers.
    `accumulation` > 1 multiplies each peer's completions per epoch (gradient_accumulation_steps); same adapter."""
    from trainer.models import ensure_tiny_model, hivetune_home
    from trainer.sft import ensure_warm_start

    cfg = yaml.safe_load((ROOT / "recipes" / "configs" / "public_run.yaml").read_text())
    warm = ensure_warm_start(cfg["task"], hivetune_home() / "demo" / "warm_start", task_params=cfg["task_params"],
                             model=str(ensure_tiny_model(seed=0)), **cfg["warm_start"])  # fmt: skip
    spec = {"name": "swarm-comm", "model": {"base": str(warm)},
            "task": {"name": cfg["task"], "seed": 0, "params": cfg["task_params"]}, **cfg["run"]}  # fmt: skip
    spec["averaging"] = {**spec["averaging"], "min_group": peers, "delayed_updates": delayed}
    if accumulation > 1:
        spec["grpo"] = {**spec["grpo"], "gradient_accumulation_steps": accumulation}
    return spec


def adapter_wire_bytes(spec: dict) -> int:
    """S: LoRA parameters of the run's adapter x 2 bytes (fp16 on the wire)."""
    from peft import LoraConfig, get_peft_model

    from trainer.models import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer(spec["model"]["base"])
    lora = spec["lora"]
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], target_modules=lora["target_modules"],
                        task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, config)
    return 2 * sum(p.numel() for p in model.parameters() if p.requires_grad)


class Swarm:
    """A bootstrap + `peers` join processes, each in its namespace; killed (by process group) on close."""

    def __init__(self, run_yaml: Path, peers: int, epochs: int, work: Path):
        self.run_yaml, self.peers, self.epochs, self.work = run_yaml, peers, epochs, work
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
                    "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
        self.procs: list[subprocess.Popen] = []
        self.samples: dict[int, list[tuple[float, int, int]]] = {}

    def start(self) -> None:
        boot_log = self.work / "bootstrap.log"
        self.boot = self._spawn(0, ["bootstrap", "--run", str(self.run_yaml), "--host-maddr",
                                    f"/ip4/{SUBNET}.1/tcp/0"], boot_log)  # fmt: skip
        maddr = self._wait_line(boot_log, f"/ip4/{SUBNET}.1/", 120)
        for i in range(1, self.peers + 1):
            args = ["join", "--run", str(self.run_yaml), "--initial-peers", maddr, "--host-maddr",
                    f"/ip4/{SUBNET}.{i + 1}/tcp/0", "--max-epochs", str(self.epochs), "--output-dir",
                    str(self.work / f"peer{i}"), "--report-to", "none", "--json"]  # fmt: skip
            self.samples[len(self.procs)] = []
            self._spawn(i, args, self.work / f"peer{i}.log")

    def _spawn(self, i: int, args: list[str], log: Path) -> subprocess.Popen:
        cmd = ["ip", "netns", "exec", ns_name(i), sys.executable, "-m", "coordination.cli.app", *args]
        proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=self.env, cwd=ROOT,
                                start_new_session=True)  # fmt: skip
        self.procs.append(proc)
        return proc

    @staticmethod
    def _wait_line(log: Path, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in log.read_text().splitlines():
                if line.startswith(prefix):
                    return line.strip()
            time.sleep(0.2)
        raise SystemExit(f"bootstrap printed no {prefix}... address within {timeout}s: see {log}")

    def poll(self) -> None:
        """One byte-counter sample per peer process."""
        now = time.time()
        for k in self.samples:
            counters = net_bytes(self.procs[k].pid)
            if counters is not None:
                self.samples[k].append((now, *counters))

    def epochs_done(self) -> int:
        """The lowest epoch any peer has reached (from its journal)."""
        done = []
        for i in range(1, self.peers + 1):
            try:
                journal = json.loads((self.work / f"peer{i}" / "consensus.json").read_text())
                done.append(max(int(e) for e in journal["epochs"]))
            except (OSError, ValueError, KeyError):
                done.append(0)
        return min(done)

    def peer_procs(self) -> list[subprocess.Popen]:
        return self.procs[1:]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()


def run_setting(spec: dict, rate: int, repeat: int, args, work: Path, progress, task) -> list[dict]:
    """One swarm at `rate` Mbit/s (0 = unshaped); returns one row per (peer, counted epoch)."""
    mode = "delayed" if spec["averaging"]["delayed_updates"] else "sync"
    work = work / f"{mode}_r{rate}_rep{repeat}"
    work.mkdir(parents=True)
    run_yaml = work / "run.yaml"
    run_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    create_namespaces(args.peers + 1, rate)
    swarm = Swarm(run_yaml, args.peers, args.epochs, work)
    try:
        swarm.start()
        deadline = time.monotonic() + args.timeout
        while any(p.poll() is None for p in swarm.peer_procs()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{rate} Mbit/s repeat {repeat}: peers still running after {args.timeout}s: {work}")
            swarm.poll()
            progress.update(task, completed=swarm.epochs_done())
            time.sleep(0.1)
        if any(p.returncode != 0 for p in swarm.peer_procs()):
            raise SystemExit(f"{rate} Mbit/s repeat {repeat}: a peer failed: see {work}")
    finally:
        swarm.close()
        remove_namespaces()
    rows = []
    for k in range(1, args.peers + 1):
        summary = json.loads((work / f"peer{k}.log").read_text().strip().splitlines()[-1])
        samples = swarm.samples[k]
        for row in summary["epoch_times"]:
            # the first `warmup` rounds are start-up (first connections, peers starting apart): in sync mode the
            # row of epoch k holds round k, with delayed updates the wait for round k-1, so skip one row more
            first = args.warmup + (mode == "delayed")
            if row["epoch"] < first or row["epoch"] >= args.epochs - args.cooldown:
                continue
            rx0, tx0 = interpolate(samples, row["started_at"])
            rx1, tx1 = interpolate(samples, row["ended_at"])
            a0, a1 = row["round_spans"].get("allreduce", (row["ended_at"], row["ended_at"]))
            (arx0, atx0), (arx1, atx1) = interpolate(samples, a0), interpolate(samples, a1)
            rows.append({**row, "mode": mode, "rate_mbit": rate, "repeat": repeat, "peer": k, "rx_bytes": rx1 - rx0,
                         "tx_bytes": tx1 - tx0, "allreduce_tx_bytes": atx1 - atx0, "allreduce_rx_bytes": arx1 - arx0,
                         "round_groups": summary["round_groups"]})  # fmt: skip
    return rows


def mean_ci(rows: list[dict], value, n_boot: int = 5000) -> tuple[float, float, float]:
    """Mean of value(row) and a 95% bootstrap CI, resampling epochs (all peers' rows of one epoch together)."""
    clusters: dict[tuple, list[float]] = {}
    for r in rows:
        clusters.setdefault((r["repeat"], r["epoch"]), []).append(value(r))
    groups = list(clusters.values())
    point = statistics.fmean(v for g in groups for v in g)
    rng, means = random.Random(0), []
    for _ in range(n_boot):
        pick = [v for _ in groups for v in groups[rng.randrange(len(groups))]]
        means.append(statistics.fmean(pick))
    means.sort()
    return point, means[int(0.025 * n_boot)], means[int(0.975 * n_boot) - 1]


def ratio_ci(base: list[dict], rows: list[dict], value, n_boot: int = 5000) -> tuple[float, float, float]:
    """mean(value | base) / mean(value | rows) with a 95% bootstrap CI (epochs resampled in both, independently)."""

    def clusters(rs):
        out: dict[tuple, list[float]] = {}
        for r in rs:
            out.setdefault((r["repeat"], r["epoch"]), []).append(value(r))
        return list(out.values())

    a, b = clusters(base), clusters(rows)
    flat = lambda gs: statistics.fmean(v for g in gs for v in g)  # noqa: E731
    rng, ratios = random.Random(1), []
    for _ in range(n_boot):
        pa = [a[rng.randrange(len(a))] for _ in a]
        pb = [b[rng.randrange(len(b))] for _ in b]
        ratios.append(flat(pa) / flat(pb))
    ratios.sort()
    return flat(a) / flat(b), ratios[int(0.025 * n_boot)], ratios[int(0.975 * n_boot) - 1]


def summarize(mode: str, rate: int, rows: list[dict], s_bytes: int, peers: int) -> dict:
    util = mean_ci(rows, lambda r: r["utilization"])
    tx, rx = mean_ci(rows, lambda r: r["tx_bytes"]), mean_ci(rows, lambda r: r["rx_bytes"])
    allreduce_tx = statistics.fmean(r["allreduce_tx_bytes"] for r in rows)
    mean = lambda key: statistics.fmean(r[key] for r in rows)  # noqa: E731
    phases = {p: statistics.fmean(r["round_phases_s"].get(p, 0.0) for r in rows) for p in PHASES}
    butterfly = 2 * (peers - 1) / peers * s_bytes
    return {
        "mode": mode, "rate_mbit": rate, "epochs_counted": len({(r["repeat"], r["epoch"]) for r in rows}),
        "peer_epochs": len(rows),
        "utilization": util[0], "utilization_ci95": [util[1], util[2]],
        "tx_bytes_per_epoch": tx[0], "tx_bytes_ci95": [tx[1], tx[2]], "rx_bytes_per_epoch": rx[0],
        "tx_over_adapter": tx[0] / s_bytes, "rx_over_adapter": rx[0] / s_bytes, "tx_over_butterfly": tx[0] / butterfly,
        "allreduce_tx_bytes": allreduce_tx, "allreduce_tx_over_butterfly": allreduce_tx / butterfly,
        "failed_rounds": sum(r["round_phases_s"].get("wait_canonical", 0.0) > 0 for r in rows),
        "allreduce_bound_s": butterfly * 8 / (rate * 1e6) if rate else 0.0,
        "wall_s": mean("wall_s"), "generation_s": mean("generation_s"), "backward_s": mean("backward_s"),
        "averaging_s": mean("averaging_s"), "other_s": mean("other_s"), "round_phases_s": phases,
        "full_group_share": statistics.fmean(g == peers for r in rows for g in r["round_groups"]),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=2)
    parser.add_argument("--rates", type=int, nargs="+", default=[0, 100, 10], help="Mbit/s; 0 = unshaped")
    parser.add_argument("--epochs", type=int, default=7, help="epochs per swarm (--max-epochs of each peer)")
    parser.add_argument("--warmup", type=int, default=1, help="first rounds not counted (start-up)")
    parser.add_argument("--cooldown", type=int, default=1, help="last epochs not counted (the run's end)")
    parser.add_argument("--matchmaking-time", type=float, default=None, help="s; default: the demo run's")
    parser.add_argument("--modes", nargs="+", default=["sync"], choices=["sync", "delayed"],
                        help="round protocols, side by side: sync | delayed (averaging.delayed_updates)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=2, help="swarms per rate, interleaved across rates")
    parser.add_argument("--timeout", type=float, default=900.0, help="s per swarm before giving up")
    parser.add_argument("--accumulation", type=int, default=1,
                        help="gradient_accumulation_steps: x completions per peer, epoch (demo: 1 = 32)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--name", default="swarm_comm", help="output file stem")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (ip netns, tc): run with sudo")
    lock = open("/tmp/hivetune-swarm-comm.lock", "w")  # the namespaces have fixed names: one bench at a time
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise SystemExit("another bench/swarm_comm.py is running (it owns the hvt-* namespaces)") from None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # -> finally blocks: processes reaped, namespaces removed

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="swarm_comm_"))
    specs = {mode: demo_spec(args.peers, args.accumulation, delayed=mode == "delayed") for mode in args.modes}
    if args.matchmaking_time is not None:  # what the round's fixed wait costs (the demo's run: 1.0 s)
        for spec in specs.values():
            spec["averaging"] = {**spec["averaging"], "matchmaking_time": args.matchmaking_time}
    spec = specs[args.modes[0]]
    s_bytes = adapter_wire_bytes(spec)
    console.print(f"demo adapter: S = {s_bytes:,} bytes fp16 ({s_bytes // 2:,} LoRA params); logs in {work}")
    settings = [(mode, rate) for rate in args.rates for mode in args.modes]
    rows: dict[tuple, list[dict]] = {key: [] for key in settings}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            for repeat in range(args.repeats):
                for mode, rate in settings:
                    label = "unshaped" if rate == 0 else f"{rate} Mbit/s"
                    task = progress.add_task(f"repeat {repeat + 1}: {mode}, {label}, epochs", total=args.epochs)
                    rows[mode, rate] += run_setting(specs[mode], rate, repeat, args, work, progress, task)
                    progress.update(task, completed=args.epochs)
    finally:
        remove_namespaces()
    results = [summarize(mode, rate, rows[mode, rate], s_bytes, args.peers) for mode, rate in settings]
    for r in results:  # side by side: the same link under the first mode (the baseline)
        base = next(b for b in results if b["rate_mbit"] == r["rate_mbit"] and b["mode"] == args.modes[0])
        r["utilization_vs_" + args.modes[0]] = r["utilization"] / base["utilization"] if base["utilization"] else None
        # epochs per wall second relative to the baseline: what a peer gets done (utilization alone also rises
        # when compute gets slower, e.g. when the round's CPU work competes with it on a shared box)
        ratio = ratio_ci(rows[args.modes[0], r["rate_mbit"]], rows[r["mode"], r["rate_mbit"]], lambda x: x["wall_s"])
        r["throughput_vs_" + args.modes[0]], r["throughput_ci95"] = ratio[0], [ratio[1], ratio[2]]
    title = f"{args.peers} `hivetune join` peers, demo run, S = {s_bytes / 1e3:.0f} kB fp16 (mean per epoch)"
    table = Table(title=title)
    for col in ("mode", "link", "utilization [95% CI]", f"vs {args.modes[0]}", "epochs/s vs [95% CI]",
                "sent/S", "in all-reduce/S", "recv/S", "wall s", "gen s", "bwd s",
                "avg s", "wait s", "allreduce s", "save s", "resolve s", "other s"):  # fmt: skip
        table.add_column(col)
    for r in results:
        ph = r["round_phases_s"]
        table.add_row(
            r["mode"], "unshaped" if r["rate_mbit"] == 0 else f"{r['rate_mbit']} Mbit/s",
            f"{r['utilization']:.3f} [{r['utilization_ci95'][0]:.3f}, {r['utilization_ci95'][1]:.3f}]",
            f"{r['utilization_vs_' + args.modes[0]]:.2f}x",
            "{:.2f}x [{:.2f}, {:.2f}]".format(r["throughput_vs_" + args.modes[0]], *r["throughput_ci95"]),
            f"{r['tx_over_adapter']:.2f}", f"{r['allreduce_tx_bytes'] / s_bytes:.2f}", f"{r['rx_over_adapter']:.2f}",
            f"{r['wall_s']:.2f}",
            f"{r['generation_s']:.2f}", f"{r['backward_s']:.2f}", f"{r['averaging_s']:.2f}", f"{ph['wait_group']:.2f}",
            f"{ph['allreduce']:.2f}", f"{ph['save']:.2f}", f"{ph['resolve']:.2f}", f"{r['other_s']:.2f}",
        )  # fmt: skip
    console.print(table)
    doc = {"peers": args.peers, "accumulation": args.accumulation, "epochs": args.epochs, "warmup": args.warmup,
           "cooldown": args.cooldown, "modes": args.modes, "repeats": args.repeats,
           "adapter_bytes": s_bytes, "lora": spec["lora"], "grpo": spec["grpo"], "averaging": spec["averaging"],
           "cpus": os.cpu_count(), "results": results,
           "rows": [r for key in settings for r in rows[key]]}  # fmt: skip
    (args.out / f"{args.name}.json").write_text(json.dumps(doc, indent=1))
    plot(results, args.out / f"{args.name}.png")
    console.print(f"written {args.out / args.name}.json and .png; raw logs in {work}")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = {r["mode"] for r in results}
    labels = [("unshaped" if r["rate_mbit"] == 0 else f"{r['rate_mbit']} Mbit/s")
              + (f"\n{r['mode']}" if len(modes) > 1 else "") for r in results]  # fmt: skip
    if "delayed" in modes:  # the round's phases overlap compute there: show only what the peer waited for
        parts = [("generation", lambda r: r["generation_s"]), ("backward", lambda r: r["backward_s"]),
                 ("waiting for the round", lambda r: r["averaging_s"]), ("other", lambda r: r["other_s"])]  # fmt: skip
    else:
        parts = [("generation", lambda r: r["generation_s"]), ("backward", lambda r: r["backward_s"]),
                 *((p, (lambda r, p=p: r["round_phases_s"][p])) for p in PHASES),
                 ("other", lambda r: r["other_s"] + r["averaging_s"] - sum(r["round_phases_s"].values()))]  # fmt: skip
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
    bottom = [0.0] * len(results)
    for name, get in parts:
        values = [max(get(r), 0.0) for r in results]
        if any(v > 0.005 for v in values):
            ax.bar(labels, values, bottom=bottom, label=name)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("seconds per epoch (mean)")
    ax.set_title("where a peer's epoch goes")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    util = [r["utilization"] for r in results]
    err = [[u - r["utilization_ci95"][0] for u, r in zip(util, results, strict=True)],
           [r["utilization_ci95"][1] - u for u, r in zip(util, results, strict=True)]]  # fmt: skip
    bx.bar(labels, util, yerr=err, capsize=4, color="tab:green")
    bx.axhline(0.9, color="k", linestyle="--", label="goal 0.9 @ 100 Mbit/s")
    bx.set_ylim(0, 1)
    bx.set_ylabel("(generation + backward) / wall")
    bx.set_title("compute utilization (95% CI over epochs)")
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
