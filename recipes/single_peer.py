"""The single-peer pipeline as a script: SFT warm start -> eval -> GRPO + LoRA -> eval, over one or more seeds.

    python -m recipes.single_peer --config recipes/configs/single_peer_arith_tiny.yaml            # seed from config
    python -m recipes.single_peer --config recipes/configs/single_peer_arith_tiny.yaml --seeds 0 1 2
    hivetune train --config recipes/configs/single_peer_arith_tiny.yaml --seed 1

The pipeline itself (config, stages, summary, plot) is `trainer.pipeline`; this script parses the
command line, runs each seed, and prints the table. Several seeds also write `seeds.json` and
`seeds.png` (mean and spread of before/after/gain) under the config's `output_dir`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.pipeline import load_pipeline_config, print_summary, run_seeds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="recipes/configs/single_peer_arith_tiny.yaml")
    parser.add_argument("--seeds", type=int, nargs="*", help="Run these seeds (default: the config's seed).")
    parser.add_argument("--output_dir", default=None)
    options = parser.parse_args(argv)
    cfg = load_pipeline_config(options.config, output_dir=options.output_dir)
    summaries, aggregated = run_seeds(cfg, options.seeds or [cfg.seed])
    print_summary(summaries, aggregated if len(summaries) > 1 else None)
    print(f"wrote {Path(cfg.output_dir) / 'seeds.json'} and {Path(cfg.output_dir) / 'seeds.png'}")


if __name__ == "__main__":
    main()
