"""Receipts through a real hivemind DHT and rollout records over libp2p streams, on loopback."""

import dataclasses
import json

import pytest
from eth_account import Account

from coordination.attest.dht_receipts import fetch_receipts, publish_receipt, receipts_key
from coordination.attest.p2p_serving import P2PRecordFetcher, RolloutServer
from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord, verify_record
from coordination.attest.rollout_store import RecordsUnavailable, RolloutDirectory
from coordination.attest.typed_data import attest_domain

pytestmark = [pytest.mark.network, pytest.mark.slow]

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
RUN = "bafy-p2p-run"
DOMAIN = attest_domain(chain_id=31337)
PEER = Account.from_key("0x" + "44" * 32)


@pytest.fixture(scope="module")
def dhts():
    import hivemind

    first = hivemind.DHT(host_maddrs=LOOPBACK, start=True)
    second = hivemind.DHT(host_maddrs=LOOPBACK, initial_peers=[str(m) for m in first.get_visible_maddrs()], start=True)
    yield first, second
    for node in (first, second):
        node.shutdown()


def records(n=4):
    return [
        RolloutRecord.build(
            slot=i // 2,
            generation=i % 2,
            task_seed=1,
            task_index=i,
            prompt=f"Q:{i}",
            completion=f"<a>{i}</a>",
            completion_ids=[i, i + 1],
            reward=0.5,
            logprobs=[-0.25, -1.5],
        )
        for i in range(n)
    ]


def test_a_published_receipt_is_found_and_its_records_fetched_with_valid_proofs(dhts, tmp_path):
    peer_dht, validator_dht = dhts
    recs = records()
    signed = sign_receipt(
        build_receipt(run_id_bytes32=b"\x01" * 32, epoch=2, peer=PEER.address, records=recs, checkpoint_cid="bafy-ck"),
        PEER.key,
        DOMAIN,
    )
    store = RolloutDirectory(tmp_path)
    store.put(signed, recs)
    with RolloutServer(dht=peer_dht, store=store, prefix=RUN):
        assert publish_receipt(peer_dht, RUN, 2, signed, maddrs=peer_dht.get_visible_maddrs())
        published = fetch_receipts(validator_dht, RUN, 2)
        assert [p.signed for p in published] == [signed]
        assert published[0].peer_id == peer_dht.peer_id.to_base58()
        assert fetch_receipts(validator_dht, RUN, 3) == [] and fetch_receipts(validator_dht, "other-run", 2) == []
        fetch = P2PRecordFetcher.from_published(validator_dht, prefix=RUN, published=published, timeout=20)
        got = fetch(signed)
        assert [r for r, _ in got] == recs
        assert all(verify_record(signed.receipt.rollouts_root, r, p) for r, p in got)
        missing = sign_receipt(dataclasses.replace(signed.receipt, epoch=9), PEER.key, DOMAIN)
        with pytest.raises(RecordsUnavailable):
            fetch(missing)


def test_a_malformed_dht_record_is_skipped(dhts):
    from hivemind.utils import get_dht_time

    peer_dht, validator_dht = dhts
    peer_dht.store(
        receipts_key(RUN, 5), subkey="0xnot-a-peer", value={"signed": {"junk": 1}}, expiration_time=get_dht_time() + 60
    )
    assert fetch_receipts(validator_dht, RUN, 5) == []


def test_an_unreachable_holder_is_records_unavailable(dhts):
    _, validator_dht = dhts
    signed = sign_receipt(
        build_receipt(
            run_id_bytes32=b"\x01" * 32, epoch=2, peer=PEER.address, records=records(), checkpoint_cid="bafy-ck"
        ),
        PEER.key,
        DOMAIN,
    )
    fetch = P2PRecordFetcher(validator_dht, prefix=RUN, holders={}, timeout=5)
    with pytest.raises(RecordsUnavailable):
        fetch(signed)
    assert json.loads(json.dumps(signed.to_json())) == signed.to_json()
