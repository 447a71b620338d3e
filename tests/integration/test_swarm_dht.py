"""DHT lifecycle: run-spec handshake (differing fields named), no-answer error after retries, persistent identity."""

import dataclasses
import time

import pytest

from coordination.errors import SwarmError
from coordination.swarm.dht_node import check_run_spec, start_dht, visible_maddrs
from coordination.swarm.peer import start_bootstrap
from coordination.swarm.runspec import run_spec_from_dict

pytestmark = pytest.mark.network
LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]


@pytest.fixture
def spec():
    return run_spec_from_dict({"name": "dht-test"})


def test_joiner_with_a_different_spec_is_told_which_fields_differ(spec):
    with start_bootstrap(spec, host_maddrs=LOOPBACK) as node:
        joiner = start_dht(initial_peers=node.maddrs, host_maddrs=LOOPBACK)
        try:
            check_run_spec(joiner, spec)  # same spec: fine
            other = dataclasses.replace(
                spec,
                grpo=dataclasses.replace(spec.grpo, learning_rate=1.0),
                averaging=dataclasses.replace(spec.averaging, compression="none"),
            )
            with pytest.raises(SwarmError) as info:
                check_run_spec(joiner, other)
            message = str(info.value)
            assert "averaging.compression, grpo.learning_rate" in message and spec.run_id in message
        finally:
            joiner.shutdown()


def test_no_initial_peer_answers_gives_a_clear_error_after_retries(spec):
    with start_bootstrap(spec, host_maddrs=LOOPBACK) as node:
        dead = visible_maddrs(node.dht)[0]
    start = time.monotonic()
    with pytest.raises(SwarmError) as info:
        start_dht(initial_peers=[dead], host_maddrs=LOOPBACK, retries=1, backoff_s=0.2)
    assert "after 2 attempts" in str(info.value) and "bootstrap peer is still running" in str(info.value)
    assert time.monotonic() - start < 60


def test_identity_file_keeps_the_peer_id_across_restarts(tmp_path):
    key = str(tmp_path / "peer.key")
    first = start_dht(host_maddrs=LOOPBACK, identity_path=key)
    peer_id = first.peer_id
    first.shutdown()
    second = start_dht(host_maddrs=LOOPBACK, identity_path=key)
    try:
        assert second.peer_id == peer_id
    finally:
        second.shutdown()
