"""`make demo` (for now): the single-peer pipeline on the tiny model, with a summary table and a plot.

    python -m recipes.demo                          # what `make demo` runs (~5-10 min on 2 CPU cores)
    python -m recipes.demo --seeds 0 1 2            # the multi-seed result (mean and spread)

SFT warm start -> held-out eval -> GRPO + LoRA -> held-out eval, configured by
recipes/configs/single_peer_arith_tiny.yaml; writes outputs/demo/{seeds.json,seeds.png} and each
seed's summary, adapter and warm start under outputs/demo/seed<s>/. A later issue turns this into a
whole public run (chain, bootstrap, peers, validator, vote).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONFIG = Path(__file__).parent / "configs" / "single_peer_arith_tiny.yaml"


def main(argv: list[str] | None = None) -> None:
    from recipes.single_peer import load_pipeline_config, print_summary, run_seeds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--output_dir", default="outputs/demo")
    options = parser.parse_args(argv)
    cfg = load_pipeline_config(CONFIG, output_dir=options.output_dir)
    summaries, aggregated = run_seeds(cfg, options.seeds)
    print_summary(summaries, aggregated if len(summaries) > 1 else None)
    print(f"plot: {Path(options.output_dir) / 'seeds.png'}   data: {Path(options.output_dir) / 'seeds.json'}")


if __name__ == "__main__":
    main()
