"""Attested compute, peer side: what a peer did in an epoch, committed to and signed.

- `assignment`: prompts of (run, epoch, peer) from H(run id, epoch, peer address).
- `seeded_sampling`: rollout tokens drawn by inverse CDF from public seeded uniforms, so one
  forward pass verifies a completion was sampled from the model.
- `logprobs.completion_logprobs`: the one log-prob function of peers and validators.
- `records`: `RolloutRecord` and its OZ StandardMerkleTree leaf; `rollouts_tree`.
- `receipts`: the EIP-712 `WorkReceipt`, `build_receipt`, `sign_receipt`, `SignedReceipt.verify`.
- `rollouts.generate_rollouts`: an epoch's records on a model; `epoch_hook.EpochAttester` for the
  swarm trainer's `on_epoch_end`.
- `rollout_store` (local directory), `dht_receipts` (DHT), `p2p_serving` (records over libp2p).
"""
