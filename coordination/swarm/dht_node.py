"""DHT lifecycle of a peer: start (with retries), persistent identity, and the run-spec handshake.

    dht = start_dht(initial_peers=["/ip4/1.2.3.4/tcp/31337/p2p/Qm..."], identity_path="peer.key")
    publish_run_spec(dht, spec)        # bootstrap: announce the canonical spec under its run id
    check_run_spec(dht, spec)          # joiner: SwarmError naming the differing fields if the run differs
    visible_maddrs(dht)                # the multiaddrs to share (loopback / 0.0.0.0 filtered last)
    use_owner_key("out/owner.key")     # this process's owner key of protected records survives restarts

Specs live under the one well-known key `hivetune/runs` (subkey = run id, value = the dag-cbor
canonical spec), so a joiner whose spec (hence run id) differs can still find the run it tried to
join and learn which fields differ. Everything else a run stores is prefixed by its run id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from coordination.errors import SwarmError
from coordination.swarm.runspec import RunSpec, diff_fields

logger = logging.getLogger(__name__)

RUNS_KEY = "hivetune/runs"
SPEC_TTL_S = 600.0
DEFAULT_HOST_MADDRS = ("/ip4/0.0.0.0/tcp/0",)

NO_PEER_HELP = (
    "check that: the multiaddr is copied whole from `hivetune bootstrap` (/ip4/<ip>/tcp/<port>/p2p/<id>), "
    "the bootstrap peer is still running, its port is reachable from here (firewall, NAT), and you did not "
    "pass a loopback address from another machine; behind NAT add --client-mode"
)


def start_dht(
    *,
    initial_peers: Sequence[str] = (),
    host_maddrs: Sequence[str] = DEFAULT_HOST_MADDRS,
    announce_maddrs: Sequence[str] | None = None,
    identity_path: str | None = None,
    client_mode: bool = False,
    retries: int = 3,
    backoff_s: float = 1.0,
    **dht_kwargs,
):
    """Start a hivemind DHT; retry with exponential backoff when no initial peer answers.

    :param initial_peers: multiaddrs of running peers (empty = start a new swarm, i.e. bootstrap)
    :param host_maddrs: where to listen; `/ip4/0.0.0.0/tcp/0` = all interfaces, port from the OS.
        Public bootstrap nodes should fix the port (e.g. /ip4/0.0.0.0/tcp/31337).
    :param identity_path: libp2p private key file; created on first use, so the peer id (and the
        multiaddr you share) survives restarts.
    :param client_mode: for peers behind NAT/firewalls: no inbound connections, cannot be a reducer.
    :param retries: attempts after the first one; waits backoff_s, 2*backoff_s, ... in between.
    """
    import hivemind

    kwargs = dict(
        initial_peers=list(initial_peers),
        host_maddrs=list(host_maddrs),
        identity_path=identity_path,
        client_mode=client_mode,
        start=True,
        **dht_kwargs,
    )
    if announce_maddrs:
        kwargs["announce_maddrs"] = list(announce_maddrs)
    last_error: BaseException | None = None
    for attempt in range(retries + 1):
        try:
            return hivemind.DHT(**kwargs)
        except Exception as exc:  # hivemind raises RuntimeError / P2PDaemonError / TimeoutError here
            last_error = exc
            if not initial_peers:
                raise SwarmError(f"could not start a DHT node on {list(host_maddrs)}: {exc}") from exc
            if attempt < retries:
                delay = backoff_s * 2**attempt
                logger.warning(f"no initial peer answered (attempt {attempt + 1}/{retries + 1}); retry in {delay:g}s")
                time.sleep(delay)
    raise SwarmError(
        f"none of the initial peers {list(initial_peers)} answered after {retries + 1} attempts "
        f"({type(last_error).__name__}: {last_error}); {NO_PEER_HELP}"
    ) from last_error


def use_owner_key(path) -> bytes:
    """Make the RSA key in `path` (created on first use, mode 0600, written atomically) this process's owner
    key of owner-protected DHT records (epoch board, receipts): a restarted peer keeps its identity in the
    consensus, so the others see it come back rather than a stranger. Call it before the first record is
    written: hivemind signs with one process-wide `RSASignatureValidator`. Returns the owner public key."""
    import os
    import tempfile
    from pathlib import Path

    from hivemind.dht.crypto import RSASignatureValidator
    from hivemind.utils.crypto import RSAPrivateKey

    path = Path(path)
    if path.is_file():
        try:
            key = RSAPrivateKey.__new__(RSAPrivateKey)
            key.__setstate__({"_private_key": path.read_bytes()})  # hivemind's own (DER) serialisation
        except ValueError as exc:
            raise SwarmError(f"{path} is not an RSA owner key ({exc}); move it away to start as a new peer") from exc
    else:
        key = RSAPrivateKey()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".owner-key-")
        with os.fdopen(fd, "wb") as out:  # mkstemp: mode 0600
            out.write(key.to_bytes())
        os.replace(tmp, path)
    with RSAPrivateKey._process_wide_key_lock:
        current = RSAPrivateKey._process_wide_key
        if current is not None and current.to_bytes() != key.to_bytes():
            raise SwarmError(f"this process already signs DHT records with another owner key than {path}")
        RSAPrivateKey._process_wide_key = key
    return RSASignatureValidator(key).local_public_key


def visible_maddrs(dht) -> list[str]:
    """The DHT's multiaddrs, most shareable first (non-loopback before loopback)."""
    addrs = [str(a) for a in dht.get_visible_maddrs()]
    return sorted(addrs, key=lambda a: ("/127.0.0.1/" in a or "/::1/" in a, a))


def publish_run_spec(dht, spec: RunSpec, *, ttl_s: float = SPEC_TTL_S) -> bool:
    """Store the canonical spec under RUNS_KEY/run_id; bootstrap nodes republish every ttl_s/2."""
    from hivemind.utils import get_dht_time

    return bool(dht.store(RUNS_KEY, spec.encode(), expiration_time=get_dht_time() + ttl_s, subkey=spec.run_id))


def published_specs(dht) -> dict[str, dict]:
    """run id -> canonical spec of every run announced on this DHT."""
    import dag_cbor

    found = dht.get(RUNS_KEY, latest=True)
    if found is None or not isinstance(found.value, dict):
        return {}
    out = {}
    for run_id, item in found.value.items():
        try:
            out[str(run_id)] = dag_cbor.decode(item.value)
        except Exception:  # a malformed announcement from some peer: ignore it, it cannot match ours
            logger.warning(f"ignoring malformed run spec announced under {run_id!r}")
    return out


def check_run_spec(dht, spec: RunSpec, *, wait_s: float = 5.0) -> None:
    """Return if the swarm announces our run id; else raise SwarmError naming the differing fields.

    With no run announced at all (bootstrap not started by hivetune, or not yet replicated) we wait
    up to wait_s and then raise too: joining an unannounced run is almost always a mistake.
    """
    deadline = time.monotonic() + wait_s
    runs = published_specs(dht)
    while not runs and time.monotonic() < deadline:
        time.sleep(0.5)
        runs = published_specs(dht)
    if spec.run_id in runs:
        return
    if not runs:
        raise SwarmError(
            "the swarm announces no run: start the entry node with `hivetune bootstrap --run run.yaml` "
            "(or publish_run_spec) and pass its multiaddr"
        )
    ours = spec.canonical()
    closest_id, diffs = min(((rid, diff_fields(ours, other)) for rid, other in runs.items()), key=lambda x: len(x[1]))
    raise SwarmError(
        f"run spec differs from the swarm's run {closest_id} in: {', '.join(diffs)}; "
        f"use the run.yaml the operator published (your run id: {spec.run_id})"
    )
