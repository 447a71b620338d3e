"""Benchmark: learning parity of a 2-peer swarm vs 1 peer, same total samples and seed schedule.

    python bench/swarm_parity.py --peers 2 --seeds 0 1 2 3 4 5 6 7 8 9   # 30 epochs x 64 completions
    python bench/swarm_parity.py --peers 3 --epochs 40 --batch 48 --seeds 0 1 2 3 4 5 6 7 8 9   # 48: 3 x 16
    python bench/swarm_parity.py --peers 2 --delayed --name swarm_parity_2peers_delayed   # swarm with delayed updates
    -> outputs/bench/swarm_parity.{json,png}; measured results in bench/results/swarm_parity_*.

Fewer samples are too noisy to compare: at 12 epochs x 48, per-seed gains ranged 0.03-0.41 and the
ratio's CI spanned 0.55-1.18 over 10 seeds.

Both arms start from the same warm start (trainer.sft.ensure_warm_start, cached) and run the same
code path (`hivetune join` processes around a `start_bootstrap` node, swarm consensus rounds):
  single = 1 peer, per_device_train_batch_size = B: one local step per epoch;
  swarm  = n peers (2 and 3), per_device_train_batch_size = B/n each: one local step each per epoch
           (`--delayed`: with the run spec's averaging.delayed_updates, epoch k's rollouts from state k-1;
           the single peer stays synchronous, so the ratio prices distribution and staleness together).
The same LR, GRPO settings and grpo.seed, so each epoch applies one AdamW update computed from B
completions (the aggregate of n B/n gradients, weights = samples): synchronous data-parallel SGD vs
its single-peer equivalent. Held-out greedy accuracy (trainer.eval.evaluate, eval split, fixed
seed) before and after; reported per seed: gain = after - before for both arms, and the ratio of
mean gains swarm/single with a bootstrap 95% CI over seeds (goal >= 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

OUT = Path("outputs/bench")
LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]  # as the demo
ROOT = Path(__file__).resolve().parents[1]


def spec_dict(base: str, per_peer: int, batch: int, args, peers: int = 1, delayed: bool = False) -> dict:
    return {
        "name": "swarm-parity",
        "model": {"base": base},
        "task": {"name": "arithmetic", "seed": 0, "params": {"digits": args.digits}},
        "lora": {"r": 16, "alpha": 32, "target_modules": LORA_MODULES},
        "grpo": {
            "learning_rate": args.lr,
            "per_device_train_batch_size": per_peer,
            "num_generations": 8,
            "max_completion_length": args.max_completion,
            "temperature": 0.7,
            "seed": args.seed,
        },
        # every round waits for all n peers: no peer races ahead alone while another is still starting up
        "averaging": {
            "matchmaking_time": 1.0,
            "averaging_timeout": 20.0,
            "min_group": peers,
            "delayed_updates": delayed,
        },
    }


def run_arm(name: str, spec: dict, peers: int, epochs: int, work: Path) -> tuple[list[dict], float]:
    """Run `peers` join processes of `spec` for `epochs`; return their JSON summaries and wall seconds."""
    from coordination.swarm.peer import start_bootstrap
    from coordination.swarm.runspec import run_spec_from_dict

    run_yaml = work / f"{name}.yaml"
    run_yaml.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.monotonic()
    with start_bootstrap(run_spec_from_dict(spec), host_maddrs=["/ip4/127.0.0.1/tcp/0"]) as node:
        procs = []
        for i in range(peers):
            cmd = [sys.executable, "-m", "coordination.cli.app", "join", "--run", str(run_yaml), "--initial-peers",
                   node.maddrs[0], "--host-maddr", "/ip4/127.0.0.1/tcp/0", "--max-epochs", str(epochs),
                   "--output-dir", str(work / f"{name}{i}"), "--report-to", "none", "--json"]  # fmt: skip
            log = open(work / f"{name}{i}.log", "w")
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True))
        try:
            for proc in procs:
                if proc.wait(timeout=3600) != 0:
                    raise SystemExit(f"{name} peer failed: see {work}")
        finally:
            for proc in procs:  # reap by process group (the peer and its p2pd children)
                if proc.poll() is None:
                    os.killpg(proc.pid, 9)
    summaries = [json.loads((work / f"{name}{i}.log").read_text().strip().splitlines()[-1]) for i in range(peers)]
    return summaries, time.monotonic() - start


def accuracy(base: str, adapter_dir: str | None, n: int, digits: int) -> float:
    from trainer.eval import evaluate
    from trainer.models import load_base_with_adapter
    from trainer.tasks import get_task

    model, tokenizer = load_base_with_adapter(base, adapter_dir)
    return evaluate(model.eval(), tokenizer, get_task("arithmetic", digits=digits), n=n, seed=12345)["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="grpo.seed per repetition")
    parser.add_argument("--peers", type=int, nargs="+", default=[2, 3], help="swarm sizes compared with 1 peer")
    parser.add_argument("--batch", type=int, default=64, help="completions per epoch (global)")
    parser.add_argument("--lr", type=float, default=4e-4)
    parser.add_argument("--eval-n", type=int, default=200)
    parser.add_argument("--warm-steps", type=int, default=300, help="SFT steps of the warm start")
    parser.add_argument(
        "--teacher-flaw-rate", type=float, default=0.8, help="share of flawed teacher traces (GRPO's headroom)"
    )
    parser.add_argument("--digits", type=int, default=2, help="arithmetic operand digits")
    parser.add_argument("--max-completion", type=int, default=64, help="tokens (chars); 2 digits need ~55")
    parser.add_argument("--delayed", action="store_true", help="swarms with averaging.delayed_updates")
    parser.add_argument("--name", default="swarm_parity", help="output file stem under outputs/bench")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.progress import Progress

    from trainer.sft import ensure_warm_start

    torch.set_num_threads(1)
    console = Console()
    OUT.mkdir(parents=True, exist_ok=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("warm start (cached)", total=None)
        base = str(
            ensure_warm_start(
                "arithmetic",
                OUT / f"swarm_parity_warm_d{args.digits}_s{args.warm_steps}_f{args.teacher_flaw_rate}",
                task_params={"digits": args.digits},
                max_steps=args.warm_steps,
                teacher_flaw_rate=args.teacher_flaw_rate,
            )
        )
        progress.update(task, description="eval warm start")
        before = accuracy(base, None, args.eval_n, args.digits)
        runs = []
        for seed in args.seeds:
            args.seed = seed
            work = Path(tempfile.mkdtemp(prefix=f"swarm_parity_s{seed}_"))
            progress.update(task, description=f"seed {seed}: single peer")
            single, single_s = run_arm("single", spec_dict(base, args.batch, args.batch, args), 1, args.epochs, work)
            row = {"seed": seed, "after_single": accuracy(base, single[0]["adapter_dir"], args.eval_n, args.digits),
                   "wall_s_single": single_s}  # fmt: skip
            row["gain_single"] = row["after_single"] - before
            for n in args.peers:
                progress.update(task, description=f"seed {seed}: {n}-peer swarm")
                spec = spec_dict(base, args.batch // n, args.batch, args, peers=n, delayed=args.delayed)
                swarm, swarm_s = run_arm(f"swarm{n}_", spec, n, args.epochs, work)
                after = accuracy(base, swarm[0]["adapter_dir"], args.eval_n, args.digits)
                groups = [g for s in swarm for g in s["round_groups"]]
                entered = [e for s in swarm for e in s["round_entered"]]
                row[f"swarm{n}"] = {
                    "after": after,
                    "gain": after - before,
                    "peers_same_cids": all(s["cids"] == swarm[0]["cids"] for s in swarm),
                    "full_group_share": mean(g == n for g in groups) if groups else 0.0,
                    "discarded_share": mean(not e for e in entered) if entered else 0.0,
                    "wall_s": swarm_s,
                }
                same = row[f"swarm{n}"]["peers_same_cids"]
                console.print(f"seed {seed}: single gain {row['gain_single']:+.3f}, {n}-peer gain "
                              f"{after - before:+.3f}, one CID per epoch on every peer: {same}")  # fmt: skip
            runs.append(row)
            (OUT / f"{args.name}.partial.json").write_text(json.dumps({"before": before, "runs": runs}, indent=2))

    result = {
        "epochs": args.epochs, "global_batch": args.batch, "total_samples_per_arm": args.epochs * args.batch,
        "eval_n": args.eval_n, "seeds": args.seeds, "before": before, "runs": runs, "delayed_updates": args.delayed,
        "goal": "ratio >= 0.9, CI low >= 0.8", "arms": {},
    }  # fmt: skip
    for n in args.peers:
        ratio, low, high = ratio_ci([r[f"swarm{n}"]["gain"] for r in runs], [r["gain_single"] for r in runs])
        result["arms"][f"{n}_peers"] = {
            "ratio": ratio, "ratio_ci95": [low, high],
            "mean_gain": mean(r[f"swarm{n}"]["gain"] for r in runs),
            "full_group_share": mean(r[f"swarm{n}"]["full_group_share"] for r in runs),
            "discarded_share": mean(r[f"swarm{n}"]["discarded_share"] for r in runs),
        }  # fmt: skip
        console.print(
            f"{n} peers vs 1: ratio of mean gains {ratio:.2f} [95% CI {low:.2f}, {high:.2f}] over {len(runs)} seeds; "
            f"rounds with the full group {result['arms'][f'{n}_peers']['full_group_share']:.0%}, "
            f"discarded local steps {result['arms'][f'{n}_peers']['discarded_share']:.0%}"
        )
    console.print(f"warm start {before:.3f}; mean single gain {mean(r['gain_single'] for r in runs):+.3f}")
    (OUT / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    plot(result, OUT / f"{args.name}.png")
    console.print(f"written {OUT / args.name}.json and .png")


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def ratio_ci(swarm: list[float], single: list[float], n_boot: int = 10_000) -> tuple[float, float, float]:
    """Ratio of mean gains and its percentile bootstrap 95% CI (seeds resampled in pairs)."""
    import random

    point = mean(swarm) / mean(single) if mean(single) > 0 else float("nan")
    rng, ratios = random.Random(0), []
    for _ in range(n_boot):
        idx = [rng.randrange(len(swarm)) for _ in swarm]
        denominator = mean(single[i] for i in idx)
        if denominator > 0:
            ratios.append(mean(swarm[i] for i in idx) / denominator)
    ratios.sort()
    if not ratios:
        return point, float("nan"), float("nan")
    return point, ratios[int(0.025 * len(ratios))], ratios[int(0.975 * len(ratios)) - 1]


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    seeds = [r["seed"] for r in result["runs"]]
    ax.axhline(result["before"], color="grey", linestyle="--", label="warm start")
    ax.plot(seeds, [r["after_single"] for r in result["runs"]], "o", label="1 peer")
    for arm, stats in result["arms"].items():
        n = arm.split("_")[0]
        low, high = stats["ratio_ci95"]
        label = f"{n} peers (ratio {stats['ratio']:.2f} [{low:.2f}, {high:.2f}])"
        ax.plot(seeds, [r[f"swarm{n}"]["after"] for r in result["runs"]], "s", label=label)
    ax.set_xlabel("seed")
    ax.set_ylabel("held-out greedy accuracy")
    ax.set_title(f"equal samples ({result['total_samples_per_arm']} completions per arm)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
