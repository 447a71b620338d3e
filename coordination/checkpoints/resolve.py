"""resolve_adapter: turn "a local adapter dir or a checkpoint CID" into a verified local adapter dir.

Used wherever the trainer or `hivetune join` accepts an adapter path:

    adapter_dir = resolve_adapter(args.adapter, CheckpointStore())             # path or local CID
    adapter_dir = resolve_adapter(cid, store, dht=dht, prefix=run_id)          # fetch from peers if needed
"""

from __future__ import annotations

from pathlib import Path

from coordination.checkpoints.addressing import parse_cid
from coordination.checkpoints.store import CheckpointStore
from coordination.errors import CheckpointError


def resolve_adapter(path_or_cid: str | Path, store: CheckpointStore | None = None, *, dht=None, prefix=None) -> Path:
    """An existing PEFT adapter directory is returned as is; a CID is materialized (verified) under the store's
    checkouts/.

    With `dht` and `prefix`, a CID missing locally is first fetched from the peers that announce it.
    """
    path = Path(path_or_cid)
    if path.is_dir():
        if not (path / "adapter_config.json").exists():
            raise CheckpointError(f"adapter '{path}' has no adapter_config.json: pass a PEFT adapter directory")
        return path
    try:
        if isinstance(path_or_cid, Path) or "/" in str(path_or_cid):
            raise CheckpointError("a path")
        cid = parse_cid(str(path_or_cid))
    except CheckpointError:
        raise CheckpointError(
            f"{path_or_cid} is neither an adapter directory nor a checkpoint CID: check the path or the CID"
        ) from None
    store = store or CheckpointStore()
    if dht is not None and not store.is_complete(cid):
        from coordination.checkpoints.fetch import fetch_checkpoint

        fetch_checkpoint(dht, str(cid), store, prefix=prefix or "hivetune")
    return store.checkout(cid)
