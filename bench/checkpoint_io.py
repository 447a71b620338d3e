"""Checkpoint I/O throughput: add / re-add / verify / get / fetch (loopback P2P) vs `sha256sum` and `cp`.

    python bench/checkpoint_io.py                 # 64 MB adapter-like file set, 3 repeats
    python bench/checkpoint_io.py --megabytes 16 --repeats 1

Prints MB/s for each operation and its ratio to the baseline doing comparable work (hashing →
`sha256sum`, copying → `cp`), and writes outputs/bench/checkpoint_io.json and .png. Our add/get
fsync every block/file; `cp` does not, so `cp` + `sync` is printed too. Medians of --repeats runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from coordination.checkpoints.store import CheckpointStore  # noqa: E402
from coordination.checkpoints.synthetic import write_synthetic_adapter  # noqa: E402

OUT_DIR = Path("outputs/bench")
BASELINE_OF = {"add": "sha256sum", "re-add": "sha256sum", "verify": "sha256sum", "get": "cp", "fetch": "cp"}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def local_operations(work: Path, adapter: Path) -> dict:
    """One run of every local operation on fresh targets; seconds per operation."""
    files = sorted(str(p) for p in adapter.iterdir())
    store = CheckpointStore(fresh(work / "store"))
    seconds = {
        "sha256sum": timed(lambda: subprocess.run(["sha256sum", *files], check=True, capture_output=True)),
        "cp": timed(lambda: subprocess.run(["cp", "-r", str(adapter), str(fresh(work / "cp"))], check=True)),
        "cp+sync": timed(lambda: subprocess.run(f"cp -r {adapter} {fresh(work / 'cps')} && sync", shell=True)),
    }
    cid_box = []
    seconds["add"] = timed(lambda: cid_box.append(store.add_adapter(adapter, base_model="bench")))
    seconds["re-add"] = timed(lambda: store.add_adapter(adapter, base_model="bench"))
    seconds["verify"] = timed(lambda: store.verify(cid_box[0]))
    seconds["get"] = timed(lambda: store.get(cid_box[0], fresh(work / "got")))
    return seconds, store, cid_box[0]


def fetch_seconds(work: Path, store: CheckpointStore, cid: str, max_parallel: int) -> float:
    """Seconds to fetch `cid` from a server on one loopback DHT peer into a fresh store on another."""
    import hivemind

    from coordination.checkpoints.fetch import fetch_checkpoint
    from coordination.checkpoints.server import CheckpointServer

    loopback = ["/ip4/127.0.0.1/tcp/0"]
    holder = hivemind.DHT(host_maddrs=loopback, start=True)
    fetcher = hivemind.DHT(
        host_maddrs=loopback, initial_peers=[str(m) for m in holder.get_visible_maddrs()], start=True
    )
    try:
        with CheckpointServer(dht=holder, store=store, prefix="bench") as server:
            server.announce(cid)
            target = CheckpointStore(fresh(work / f"fetched-{max_parallel}"))
            return timed(lambda: fetch_checkpoint(fetcher, cid, target, prefix="bench", max_parallel=max_parallel))
    finally:
        fetcher.shutdown()
        holder.shutdown()


def summarize(runs: list[dict], megabytes: float) -> dict:
    medians = {op: statistics.median(run[op] for run in runs) for op in runs[0]}
    return {op: {"seconds": s, "mb_per_s": megabytes / s} for op, s in medians.items()}


def print_table(results: dict) -> None:
    table = Table("operation", "MB/s", "baseline", "baseline MB/s", "ratio (ours / baseline)", "ratio vs cp+sync")
    for op, row in results.items():
        base = BASELINE_OF.get(op.split(" ")[0])
        if base is None:
            table.add_row(op, f"{row['mb_per_s']:.0f}", "", "", "", "")
            continue
        base_rate, synced = results[base]["mb_per_s"], results["cp+sync"]["mb_per_s"]
        vs_sync = f"{row['mb_per_s'] / synced:.2f}" if base == "cp" else ""
        ratio = f"{row['mb_per_s'] / base_rate:.2f}"
        table.add_row(op, f"{row['mb_per_s']:.0f}", base, f"{base_rate:.0f}", ratio, vs_sync)
    Console(width=120).print(table)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    rates = [results[n]["mb_per_s"] for n in names]
    colors = ["tab:gray" if n in ("sha256sum", "cp", "cp+sync") else "tab:blue" for n in names]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(names, rates, color=colors)
    ax.set_ylabel("MB/s (higher is better)")
    ax.set_title("hivetune checkpoint I/O (blue) vs sha256sum / cp (gray)")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=64.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT_DIR) as tmp:
        work = Path(tmp)
        adapter = write_synthetic_adapter(work / "adapter", megabytes=args.megabytes)
        megabytes = sum(p.stat().st_size for p in adapter.iterdir()) / 1e6
        runs = []
        with Progress() as progress:
            task = progress.add_task("benchmarking", total=args.repeats)
            for _ in range(args.repeats):
                seconds, store, cid = local_operations(work, adapter)
                for parallel in (1, 4):
                    seconds[f"fetch (parallel {parallel})"] = fetch_seconds(work, store, cid, parallel)
                runs.append(seconds)
                progress.advance(task)
    results = summarize(runs, megabytes)
    print(f"file set: {megabytes:.1f} MB, median of {args.repeats} runs")
    print_table(results)
    report = {"megabytes": megabytes, "repeats": args.repeats, "results": results, "runs": runs}
    (OUT_DIR / "checkpoint_io.json").write_text(json.dumps(report, indent=2))
    plot(results, OUT_DIR / "checkpoint_io.png")
    print(f"wrote {OUT_DIR / 'checkpoint_io.json'} and {OUT_DIR / 'checkpoint_io.png'}")


if __name__ == "__main__":
    main()
