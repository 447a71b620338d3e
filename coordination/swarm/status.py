"""Live status of a run: each peer's rich status line, its progress in the DHT, and the run-wide view.

    publish_peer_status(dht, run_id, PeerStatus(...))     # a peer, every few seconds and every epoch
    read_run_status(dht, run_id)                          # -> list[PeerStatus], freshest first
    line = StatusLine(); line.update(status); line.close()

Keys: `{run_id}_status` (subkey = peer id). hivemind's own progress (samples toward the next epoch)
lives under `{run_id}_progress`; both are prefixed by the run id.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

STATUS_TTL_S = 60.0


@dataclass
class PeerStatus:
    peer_id: str
    epoch: int
    local_steps: int = 0
    samples: int = 0  # completions this peer contributed in total
    peers: int = 0  # peers the hivemind tracker sees
    global_samples_per_s: float = 0.0
    round_group_size: int = 0
    round_seconds: float = 0.0
    round_bytes_sent: int = 0
    rejected_parts: int = 0
    reward_mean: float | None = None
    client_mode: bool = False
    time: float = 0.0
    extra: dict = field(default_factory=dict)

    def line(self) -> str:
        reward = "-" if self.reward_mean is None else f"{self.reward_mean:.3f}"
        return (
            f"epoch {self.epoch} | peers {self.peers} | {self.global_samples_per_s:.1f} samples/s global | "
            f"last round: {self.round_group_size} peers, {self.round_seconds:.2f}s, "
            f"{self.round_bytes_sent / 1e3:.1f} kB | reward {reward} | rejected {self.rejected_parts}"
        )


def status_key(run_id: str) -> str:
    return f"{run_id}_status"


def publish_peer_status(dht, run_id: str, status: PeerStatus, *, ttl_s: float = STATUS_TTL_S) -> bool:
    from hivemind.utils import get_dht_time

    status.time = get_dht_time()
    return bool(
        dht.store(status_key(run_id), asdict(status), expiration_time=status.time + ttl_s, subkey=status.peer_id)
    )


def read_run_status(dht, run_id: str) -> list[PeerStatus]:
    """Every live peer's last published status, highest epoch then freshest first."""
    found = dht.get(status_key(run_id), latest=True)
    if found is None or not isinstance(found.value, dict):
        return []
    out = []
    for item in found.value.values():
        try:
            out.append(PeerStatus(**item.value))
        except TypeError:
            continue  # a malformed entry from some peer: skip it
    return sorted(out, key=lambda s: (-s.epoch, -s.time))


class StatusLine:
    """One live line per peer (rich). Falls back to one printed line per epoch when stdout is not a TTY."""

    def __init__(self, *, enabled: bool = True):
        self.enabled, self.live, self.last_epoch = enabled, None, None
        if enabled and sys.stdout.isatty():
            from rich.live import Live

            self.live = Live("starting...", refresh_per_second=4, transient=False)
            self.live.start()

    def update(self, status: PeerStatus) -> None:
        if not self.enabled:
            return
        if self.live is not None:
            self.live.update(status.line())
        elif status.epoch != self.last_epoch:
            print(f"[{status.peer_id[-8:]}] {status.line()}", flush=True)
        self.last_epoch = status.epoch

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
