"""Swarm: run spec and run id, hivemind DHT lifecycle, the collaborative optimizer over LoRA parameters,
the GRPO trainer that drives it, live status, and fault tolerance.

    hivetune bootstrap --run recipes/runs/arith_tiny.yaml --host-maddr /ip4/0.0.0.0/tcp/31337 --identity boot.key
    hivetune join --run recipes/runs/arith_tiny.yaml --initial-peers /ip4/.../p2p/12D3... --max-epochs 20
    hivetune status --run recipes/runs/arith_tiny.yaml --initial-peers /ip4/.../p2p/12D3...

Python API (what the CLI and the demo use):

    from coordination.swarm.runspec import load_run_spec          # RunSpec; .run_id (CID), .run_id_bytes32
    from coordination.swarm.peer import start_bootstrap, run_peer  # BootstrapNode(.maddrs, .shutdown()), PeerResult
    from coordination.swarm.status import read_run_status          # list[PeerStatus] from the DHT

    node = start_bootstrap(spec, host_maddrs=["/ip4/127.0.0.1/tcp/0"])
    run_peer(spec, initial_peers=node.maddrs, max_epochs=10, on_epoch_end=hook)

`hook(record: swarm_trainer.EpochRecord)` runs on rank 0 after every hivemind epoch with
`record.epoch`, `record.rollouts` (Rollout: epoch, seed, index, prompt, completion, reward,
rewards per function), `record.adapter_state` (the LoRA tensors that generated them),
`record.model` (already updated) and `record.peer_id`.

Modules: runspec (spec + run id), dht_node (start with retries, spec handshake), robust_averaging
(per-sender rejection of bad gradient / parameter parts), collaborative_optimizer (hivemind.Optimizer
over LoRA params), swarm_trainer (SwarmGRPOTrainer), peer (bootstrap + training peer), status.
"""
