"""Swarm: run spec and run id, hivemind DHT lifecycle, the collaborative optimizer over LoRA parameters,
the GRPO trainer that drives it, live status, and fault tolerance.

    hivetune bootstrap --run recipes/runs/arith_tiny.yaml --host-maddr /ip4/0.0.0.0/tcp/31337 --identity boot.key
    hivetune join --run recipes/runs/arith_tiny.yaml --initial-peers /ip4/.../p2p/12D3... --max-epochs 20
    hivetune status --run recipes/runs/arith_tiny.yaml --initial-peers /ip4/.../p2p/12D3...

Python API (what the CLI and the demo use):

    from coordination.swarm.runspec import load_run_spec          # RunSpec; .run_id (CID), .run_id_bytes32
    from coordination.swarm.peer import start_bootstrap, Peer, PeerConfig
    from coordination.swarm.status import read_run_status          # list[PeerStatus] from the DHT

    node = start_bootstrap(spec, host_maddrs=["/ip4/127.0.0.1/tcp/0"])
    Peer(spec, PeerConfig(initial_peers=tuple(node.maddrs), max_epochs=10), hook=on_epoch_end).run()

`hook(record: swarm_trainer.EpochRecord)` runs on rank 0 after every epoch with `record.epoch`,
`record.rollouts`, `record.adapter_state` (the LoRA tensors that generated them), `record.model`
(already holding the next canonical state), `record.peer_id` and `record.outcome` (consensus.EpochOutcome:
canonical CIDs, this peer's contribution CID, whether it entered the round).

Modules: runspec (spec + run id), dht_node (start with retries, spec handshake), aggregation (robust,
deterministic rules), consensus_averaging (the bit-identical round), training_state (deterministic AdamW,
state dirs), epoch_board (owner-protected DHT records, canonical CID), consensus (one peer's epochs),
consensus_optimizer (the Trainer's view), update_check (recompute a round), swarm_trainer
(SwarmGRPOTrainer), peer (bootstrap + Peer), status.
"""
