"""Content-addressed checkpoints: PEFT adapter dirs as IPLD DAGs (dag-cbor manifest + raw 1 MiB chunks).

    from coordination.checkpoints import CheckpointStore, resolve_adapter
    store = CheckpointStore()
    cid = store.add_adapter("adapter/", base_model="tiny")
    adapter_dir = resolve_adapter(cid, store)       # or a plain path: returned as is

Peer-to-peer transfer lives in `coordination.checkpoints.server` (CheckpointServer) and
`coordination.checkpoints.fetch` (fetch_checkpoint), so that importing this package does not import hivemind.
"""

from coordination.checkpoints.resolve import resolve_adapter
from coordination.checkpoints.store import CheckpointStore, CheckpointSummary, GcReport, VerifyReport

__all__ = ["CheckpointStore", "CheckpointSummary", "GcReport", "VerifyReport", "resolve_adapter"]
