"""The public run's summary: the dict (written as summary.json), the PNG of reward and accuracy, the printed table."""

from __future__ import annotations

import json
from pathlib import Path

from recipes.public_run.config import TOKEN


def build_summary(demo, *, peers, rewards, promotion, newcomer, promoted, curve, seconds) -> dict:
    """Everything the run showed, from the stages' results (`promoted`: the registry's current checkpoint)."""
    cfg, kinds = demo.cfg, verdict_kinds(rewards["reports"])
    return {
        "peers": cfg.peers,
        "epochs": cfg.epochs,
        "run_id": demo.spec.run_id,
        "model": cfg.model,
        "start": demo.facts["start"],
        "accuracy_before": demo.facts["accuracy_before"],
        "accuracy_after": curve[-1]["accuracy"],
        "accuracy_curve": curve,
        "reward_curve": reward_curve(peers),
        "trained_checkpoint": peers[0]["final_checkpoint"],
        "peer_checkpoints": [p["final_checkpoint"] for p in peers],
        "epoch_cids": epoch_cid_agreement(peers),
        "promoted": promoted.cid,
        "promoted_eval_digest": "0x" + promoted.eval_digest.hex(),
        "transparent_eval": "{correct}/{total} on seed {seed}".format(**promotion["eval"]),
        "proposal": promotion["proposal"],
        "status": promotion["status"],
        "newcomer_start": newcomer["start_checkpoint"],
        "newcomer": newcomer,
        "rewards": rewards["paid"],
        "units": rewards["units"],
        "verdicts": [r["counts"] for r in rewards["reports"]],
        # every demo peer is honest: any non-ACCEPTED verdict is an honest receipt flagged (NOT_IN_ROUND: unpaid
        # because its gradient missed the epoch's round, which is the rule, not a flag)
        "verdict_kinds": kinds,
        "honest_flagged": sum(n for k, n in kinds.items() if k not in ("NONE", "NOT_IN_ROUND")),
        "tx": demo.facts["tx"],
        "seconds": seconds,
        "pids": demo.procs.pids + [demo.net.node.process.pid],
    }


def write_summary(summary: dict, out: Path, console) -> None:
    """summary.json and summary.png under `out`, and the table on the console."""
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    plot(summary, out / "summary.png")
    print_summary(summary, console)
    console.print(f"plot: {out / 'summary.png'}   data: {out / 'summary.json'}   logs: {out / 'logs'}")


def reward_curve(peer_results: list[dict]) -> list[dict]:
    """Mean rollout reward (and sampled correctness) per epoch over all peers."""
    by_epoch: dict[int, list] = {}
    for result in peer_results:
        for h in result["history"]:
            if h["reward_mean"] is not None:
                by_epoch.setdefault(h["epoch"], []).append(h)
    return [
        {
            "epoch": e,
            "reward": sum(h["reward_mean"] for h in hs) / len(hs),
            "correct": sum((h["correct_rate"] or 0.0) for h in hs) / len(hs),
        }
        for e, hs in sorted(by_epoch.items())
    ]


def epoch_cid_agreement(peers: list[dict]) -> dict:
    """Epochs for which the peers' journals name one CID (no two peers hold different states of one epoch)."""
    journals = [p.get("cids", {}) for p in peers]
    epochs = sorted(set().union(*journals), key=int) if journals else []
    agree = sum(1 for e in epochs if len({j[e] for j in journals if e in j}) == 1)
    held_by_all = sum(1 for e in epochs if all(e in j for j in journals))
    return {"epochs": len(epochs), "agree": agree, "held_by_all": held_by_all}


def verdict_kinds(reports: list[dict]) -> dict[str, int]:
    """How many verdicts of every validator ruled each kind (NONE = accepted and paid)."""
    kinds: dict[str, int] = {}
    for report in reports:
        for v in report.get("verdicts", []):
            kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
    return kinds


def plot(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    rewards = summary["reward_curve"]
    ax.plot([r["epoch"] for r in rewards], [r["correct"] for r in rewards], label="sampled correctness (train)")
    ax.plot([r["epoch"] for r in rewards], [r["reward"] for r in rewards], label="mean reward (train)", alpha=0.6)
    acc = summary["accuracy_curve"]
    ax.plot([a["epoch"] for a in acc], [a["accuracy"] for a in acc], "o-", label="held-out pass@1 (greedy)")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, max(1.0, max((r["reward"] for r in rewards), default=1.0)))
    ax.set_title(f"hivetune demo: {summary['peers']} peers, promoted {summary['promoted'][:16]}...")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def print_summary(summary: dict, console) -> None:
    from rich.table import Table

    table = Table(title="hivetune public run: summary")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row(f"held-out pass@1 before ({summary['start']})", f"{summary['accuracy_before']:.3f}")
    table.add_row("held-out pass@1 after (promoted)", f"{summary['accuracy_after']:.3f}")
    table.add_row("transparent eval (validators, chain seed)", summary["transparent_eval"])
    table.add_row("promoted checkpoint (on chain)", summary["promoted"])
    table.add_row("newcomer started from", summary["newcomer_start"])
    agree = summary["epoch_cids"]
    table.add_row("epochs where every peer holds one CID", f"{agree['agree']}/{agree['epochs']}")
    for peer, paid in summary["rewards"].items():
        table.add_row(
            f"reward paid to {peer[:10]}…", f"{paid / TOKEN:.4f} HIVE ({summary['units'].get(peer, 0)} units)"
        )
    table.add_row("verdicts", json.dumps(summary["verdicts"]))
    table.add_row("honest receipts flagged / unpaid (not in round)",
                  f"{summary['honest_flagged']} / {summary['verdict_kinds'].get('NOT_IN_ROUND', 0)}")  # fmt: skip
    for name, tx in summary["tx"].items():
        table.add_row(f"tx {name}", str(tx))
    table.add_row("wall time", f"{summary['seconds']:.0f} s")
    console.print(table)
