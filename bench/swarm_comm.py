"""Benchmark: communication cost of one gradient-averaging round on shaped links (needs root for `ip netns`).

    sudo python bench/swarm_comm.py            # n in {2, 4} x {100, 10} Mbit/s -> outputs/bench/swarm_comm.{json,png}
    sudo python bench/swarm_comm.py --peers 2 3 --rates 100 --rounds 4 --params 1048576

Each peer runs in its own network namespace, joined to a hub namespace (a Linux bridge) by a veth
pair; both ends of every veth are shaped with a `tc tbf` token bucket at the link rate (this
kernel has no netem), so each peer uploads and downloads at most B. The script creates and
removes every namespace itself; no traffic leaves them.

Each peer averages one fp16 vector of S = 2 * params bytes (default 1M params = 2 MiB, about a
rank-16 q/v LoRA of a 0.5B model) with hivemind's DecentralizedAverager (butterfly all-reduce),
back to back for `rounds` rounds (the first is a warm-up and not counted). Per round we measure:
  matchmaking seconds: step() until the group is assembled (stage AWAITING_TRIGGER);
  all-reduce seconds: trigger until done, vs the lower bound 2(n-1)/n * S / B;
  bytes sent per peer (tx_bytes of the peer's interface during the all-reduce), vs S and vs 2(n-1)/n * S.
Goal: all-reduce within 1.5x of the bound. Matchmaking is a fixed cost per round that
`matchmaking_time` sets; pre-scheduling (hivemind.Optimizer does it) hides it behind compute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path("outputs/bench")
HUB = "hvt-hub"
SUBNET = "10.77.0"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def peer_ns(i: int) -> str:
    return f"hvt-p{i}"


def create_namespaces(n: int, rate_mbit: int) -> None:
    """Hub namespace with a bridge; peer i in its own namespace at 10.77.0.(i+1) over a shaped veth."""
    remove_namespaces(n)
    sh("ip", "netns", "add", HUB)
    sh("ip", "netns", "exec", HUB, "ip", "link", "add", "br0", "type", "bridge")
    sh("ip", "netns", "exec", HUB, "ip", "link", "set", "br0", "up")
    for i in range(n):
        ns, inner, outer = peer_ns(i), f"hvp{i}", f"hvh{i}"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", inner, "type", "veth", "peer", "name", outer)
        sh("ip", "link", "set", inner, "netns", ns)
        sh("ip", "link", "set", outer, "netns", HUB)
        sh("ip", "netns", "exec", HUB, "ip", "link", "set", outer, "master", "br0", "up")
        sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{SUBNET}.{i + 1}/24", "dev", inner)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", inner, "up")
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        for where, dev in ((ns, inner), (HUB, outer)):  # upload and download of peer i
            sh("ip", "netns", "exec", where, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
               "rate", f"{rate_mbit}mbit", "burst", "64kb", "latency", "100ms")  # fmt: skip


def remove_namespaces(n: int) -> None:
    for ns in [HUB, *(peer_ns(i) for i in range(max(n, 8)))]:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def run_config(n: int, rate_mbit: int, args, work: Path) -> list[dict]:
    """All peers of one (n, rate) configuration; returns each peer's per-round measurements."""
    create_namespaces(n, rate_mbit)
    procs, maddr_file = [], work / f"maddr_{n}_{rate_mbit}"
    try:
        for i in range(n):
            out = work / f"peer_{n}_{rate_mbit}_{i}.json"
            cmd = ["ip", "netns", "exec", peer_ns(i), sys.executable, __file__, "--worker", "--index", str(i),
                   "--group", str(n), "--params", str(args.params), "--rounds", str(args.rounds),
                   "--maddr-file", str(maddr_file), "--out", str(out)]  # fmt: skip
            log = open(work / f"peer_{n}_{rate_mbit}_{i}.log", "w")
            procs.append((subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), out))
            if i == 0:
                wait_file(maddr_file, 60)
        for proc, _ in procs:
            proc.wait(timeout=600)
        return [json.loads(out.read_text()) for _, out in procs]
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
        remove_namespaces(n)


def wait_file(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"peer 0 did not start within {timeout}s")
        time.sleep(0.2)


def worker(args) -> None:
    """One peer inside its namespace: average a random fp16 vector for `rounds` rounds, measure each."""
    import hivemind
    import torch
    from hivemind.averaging.control import AveragingStage
    from hivemind.compression import Float16Compression

    torch.set_num_threads(1)
    host = f"/ip4/{SUBNET}.{args.index + 1}/tcp/0"
    initial = [] if args.index == 0 else [Path(args.maddr_file).read_text().strip()]
    dht = hivemind.DHT(start=True, host_maddrs=[host], initial_peers=initial)
    if args.index == 0:
        Path(args.maddr_file).write_text(str(dht.get_visible_maddrs()[0]))
    tensor = torch.randn(args.params)
    averager = hivemind.averaging.DecentralizedAverager(
        [tensor], dht=dht, prefix="comm_bench", target_group_size=args.group, min_group_size=args.group,
        min_matchmaking_time=args.matchmaking, request_timeout=1.0, compression=Float16Compression(), start=True,
    )  # fmt: skip
    iface = f"hvp{args.index}"
    rounds = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        control = averager.step(require_trigger=True, wait=False, timeout=120)
        while control.stage == AveragingStage.LOOKING_FOR_GROUP and not control.done():
            time.sleep(0.005)
        t1, tx0 = time.perf_counter(), tx_bytes(iface)
        control.allow_allreduce()
        group = control.result(timeout=300)
        t2, tx1 = time.perf_counter(), tx_bytes(iface)
        rounds.append({"round": r, "group_size": len(group), "matchmaking_s": t1 - t0, "allreduce_s": t2 - t1,
                       "tx_bytes": tx1 - tx0})  # fmt: skip
    Path(args.out).write_text(json.dumps({"index": args.index, "rounds": rounds}))
    averager.shutdown()
    dht.shutdown()


def tx_bytes(iface: str) -> int:
    return int(Path(f"/sys/class/net/{iface}/statistics/tx_bytes").read_text())


def summarize(n: int, rate: int, peers: list[dict], params: int) -> dict:
    s_bytes = 2 * params
    bound = 2 * (n - 1) / n * s_bytes * 8 / (rate * 1e6)
    counted = [r for p in peers for r in p["rounds"][1:] if r["group_size"] == n]
    allreduce = statistics.median(r["allreduce_s"] for r in counted) if counted else float("nan")
    match = statistics.median(r["matchmaking_s"] for r in counted) if counted else float("nan")
    sent = statistics.median(r["tx_bytes"] for r in counted) if counted else float("nan")
    return {
        "peers": n, "rate_mbit": rate, "adapter_bytes": s_bytes, "rounds_counted": len(counted),
        "allreduce_s": allreduce, "bound_s": bound, "allreduce_over_bound": allreduce / bound,
        "matchmaking_s": match, "bytes_sent_per_peer": sent, "sent_over_adapter": sent / s_bytes,
        "sent_over_butterfly": sent / (2 * (n - 1) / n * s_bytes),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--rates", type=int, nargs="+", default=[100, 10], help="Mbit/s")
    parser.add_argument("--rounds", type=int, default=4, help="per config, the first is a warm-up")
    parser.add_argument("--params", type=int, default=1 << 20)
    parser.add_argument("--matchmaking", type=float, default=2.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--group", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--maddr-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if os.geteuid() != 0:
        raise SystemExit("needs root (ip netns, tc): run with sudo")

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    OUT.mkdir(parents=True, exist_ok=True)
    work, results = Path(tempfile.mkdtemp(prefix="swarm_comm_")), []
    configs = [(n, rate) for rate in args.rates for n in args.peers]
    with Progress(transient=True) as progress:
        task = progress.add_task("configs", total=len(configs))
        for n, rate in configs:
            progress.update(task, description=f"{n} peers @ {rate} Mbit/s")
            results.append(summarize(n, rate, run_config(n, rate, args, work), args.params))
            progress.advance(task)
    table = Table(title=f"one averaging round, S = {2 * args.params / 2**20:.1f} MiB fp16 (median of rounds)")
    for col in ("peers", "Mbit/s", "all-reduce s", "bound s", "ratio", "matchmaking s", "sent/S", "sent/(2(n-1)/n S)"):
        table.add_column(col)
    for r in results:
        table.add_row(
            str(r["peers"]), str(r["rate_mbit"]), f"{r['allreduce_s']:.2f}", f"{r['bound_s']:.2f}",
            f"{r['allreduce_over_bound']:.2f}", f"{r['matchmaking_s']:.2f}", f"{r['sent_over_adapter']:.2f}",
            f"{r['sent_over_butterfly']:.2f}",
        )  # fmt: skip
    Console().print(table)
    (OUT / "swarm_comm.json").write_text(json.dumps({"params": args.params, "results": results}, indent=2))
    plot(results, OUT / "swarm_comm.png")
    print(f"written {OUT / 'swarm_comm.json'} and {OUT / 'swarm_comm.png'}; raw logs in {work}")


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"n={r['peers']}\n{r['rate_mbit']} Mbit/s" for r in results]
    x = range(len(results))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar([i - 0.2 for i in x], [r["allreduce_s"] for r in results], 0.4, label="all-reduce (measured)")
    ax.bar([i + 0.2 for i in x], [r["bound_s"] for r in results], 0.4, label="bound 2(n-1)/n S/B")
    ax.plot(list(x), [r["matchmaking_s"] for r in results], "k^", label="matchmaking")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("seconds per round")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
