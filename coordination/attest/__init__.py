"""Attested compute, peer side: what a peer did in an epoch, committed to and signed.

- `assignment`: prompts of (run, epoch, peer) from H(run id, epoch, peer address).
- `seeded_sampling`: the public seed of each rollout (run, epoch, peer, slot, generation) and the
  one-forward-pass check; the sampler itself is `trainer.seeded_generation`, which peers train with.
- `logprobs.completion_logprobs`: the one log-prob function of peers and validators.
- `records`: `RolloutRecord` and its OZ StandardMerkleTree leaf; `rollouts_tree`.
- `receipts`: the EIP-712 `WorkReceipt`, `build_receipt`, `sign_receipt`, `SignedReceipt.verify`.
- `rollouts`: the reward and text of a rollout; `epoch_hook.EpochAttester` for the swarm trainer's
  `on_epoch_end` (seeded samples -> records -> signed receipt committing to the round contribution).
- `rollout_store` (local directory), `dht_receipts` (DHT), `p2p_serving` (records over libp2p, served
  through `coordination.p2p_service`).
"""
