"""`make demo`: a whole public run on one machine, every role its own process.

    python -m recipes.public_run                         # what `make demo` runs (~10 min on 2 CPU cores)
    python -m recipes.public_run --config recipes/configs/public_run_ci.yaml   # the short CI version

The package: `config` (PublicRunConfig, the YAML), `processes` (child processes, their process groups
and `--json` reports), `stages` (PublicRun: each stage below), `summary` (summary.json, the PNG, the table);
`run_demo` and `main` here.

1. **Warm start.** The run's base model: the tiny model after SFT on (deliberately flawed) teacher
   traces, so GRPO has something to fix. Held-out accuracy *before* is measured here.
2. **Chain.** anvil (`@foundry-rs/anvil`) with every contract deployed; two validators stake,
   register and are activated after the activation delay, every peer posts its bond, the operator
   stakes (voting power) and funds the reward pool.
3. **Swarm.** `hivetune bootstrap`, then `hivetune join --key-file ...` for each training peer: they
   average LoRA gradients over hivemind, work on their assigned prompts, publish a checkpoint per
   epoch and sign a work receipt per epoch.
4. **Attestation and rewards.** Each validator `hivetune validate`s every receipt by recomputation
   (records fetched over libp2p), `hivetune settle-sign`s the contribution table; the aggregator
   `hivetune settle`s the period on chain; after the challenge window each peer `hivetune claim`s.
5. **Promotion.** The trained checkpoint is nominated by its weights hash and its eval seed fixed a
   block later (`hivetune fix-seed`), each validator runs the transparent eval and signs it
   (`hivetune eval-attest`), the operator `hivetune propose`s, stakers `hivetune vote`, and
   `hivetune promote` queues it in the timelock and, after the delay, executes it.
6. **A new peer** `hivetune join`s from the promoted checkpoint, fetched by CID and verified.
7. **Summary.** A table (accuracy before/after, rewards per peer, promoted CID, tx hashes) and a
   PNG of reward and accuracy over epochs under `output_dir`.

Every child is a `hivetune` command that reports its result as one `--json` line on stdout. Every process
started here is stopped at the end, also on Ctrl-C or failure; a rerun starts clean.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")

from recipes.public_run.config import CONFIG, PublicRunConfig  # noqa: E402 - after the environment defaults
from recipes.public_run.stages import PublicRun  # noqa: E402
from recipes.public_run.summary import build_summary, write_summary  # noqa: E402

STAGES = [
    "warm start + eval",
    "chain: anvil, deploy, stake",
    "bootstrap",
    "collaborative GRPO",
    "validate + settle + claim",
    "nominate, eval, propose, vote, promote",
    "newcomer joins from promoted",
    "summary",
]


def run_demo(cfg: PublicRunConfig) -> dict:
    """The whole public run (see the package docstring); returns the summary (also written as JSON + PNG)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console()
    out = Path(cfg.output_dir)
    if out.exists():
        shutil.rmtree(out)  # a rerun starts clean
    out.mkdir(parents=True)
    demo = PublicRun(cfg, console)
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn())  # fmt: skip
    try:
        with _torch_threads(cfg.torch_threads), Progress(*columns, console=console) as progress:
            overall = progress.add_task("public run", total=len(STAGES))

            def stage(i):
                progress.update(overall, completed=i, description=f"public run: {STAGES[i]}")

            stage(0)
            warm = demo.warm_start()
            stage(1)
            roles = demo.start_chain()
            run = demo.write_run_spec(warm)
            stage(2)
            maddr = demo.bootstrap(run)
            stage(3)
            peers = demo.train(run, maddr, roles, progress)
            stage(4)
            rewards = demo.settle(run, maddr, roles)
            stage(5)
            promotion = demo.promote(run, maddr, peers[0]["final_checkpoint"], roles)
            stage(6)
            newcomer = demo.newcomer(run, maddr, roles)
            stage(7)
            current = demo.clients.registry.current(demo.spec.run_id)
            curve = demo.accuracy_curve(peers[0]["history"], out / "peer0" / "store", current.cid)
            progress.update(overall, completed=len(STAGES))
            summary = build_summary(demo, peers=peers, rewards=rewards, promotion=promotion, newcomer=newcomer,
                                    promoted=current, curve=curve, seconds=time.monotonic() - started)  # fmt: skip
        write_summary(summary, out, console)
        return summary
    finally:
        demo.procs.stop_all()
        if demo.net is not None:
            demo.net.stop()
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _torch_threads(n: int):
    """With n > 0: n intra-op threads in this process and every process it starts (OMP_NUM_THREADS), restored after."""
    if n <= 0:
        yield
        return
    from trainer.models import set_torch_threads

    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(n)
    set_torch_threads(n)
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS") if threads is None else os.environ.update(OMP_NUM_THREADS=threads)


def _raise_interrupt(*_) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--output_dir", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--peers", type=int, default=None)
    options = parser.parse_args(argv)
    cfg = PublicRunConfig.load(
        options.config, output_dir=options.output_dir, epochs=options.epochs, peers=options.peers
    )
    try:
        run_demo(cfg)
    except KeyboardInterrupt:
        print("interrupted: every process the demo started was stopped", file=sys.stderr)
        sys.exit(130)
