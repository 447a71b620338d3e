"""Swarm: hivemind DHT lifecycle, run spec and run id, the collaborative optimizer over LoRA parameters,
the GRPO trainer that drives it, live status, and fault tolerance.

Public API (the CLI and the demo use these):

    from coordination.swarm.runspec import load_run_spec, RunSpec
    from coordination.swarm.peer import start_bootstrap, run_peer
    from coordination.swarm.status import read_run_status
"""
