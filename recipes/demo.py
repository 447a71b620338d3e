"""`make demo`: a whole public run on one machine (see recipes/public_run/ for every stage).

python -m recipes.demo                 # what `make demo` runs: chain, swarm, validators, vote (~10 min, 2 cores)
python -m recipes.demo --epochs 20     # shorter
python -m recipes.single_peer --config recipes/configs/single_peer_arith_tiny.yaml --seeds 0 1 2
                                       # the single-peer pipeline (SFT -> GRPO + LoRA), mean and spread over seeds
"""

from __future__ import annotations

from recipes.public_run import main

if __name__ == "__main__":
    main()
