"""Receipts through a real hivemind DHT and rollout records over libp2p streams, on loopback."""

import dataclasses
import json

import pytest
from eth_account import Account

from coordination.attest.dht_receipts import fetch_receipts, protect, publish_receipt, receipts_key
from coordination.attest.p2p_serving import P2PRecordFetcher, RolloutServer
from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord, verify_record
from coordination.attest.rollout_store import RecordsUnavailable, RolloutDirectory
from coordination.chain.eip712 import attest_domain, run_key

pytestmark = [pytest.mark.network, pytest.mark.slow]

LOOPBACK = ["/ip4/127.0.0.1/tcp/0"]
RUN = "bafy-p2p-run"
DOMAIN = attest_domain(chain_id=31337)
PEER = Account.from_key("0x" + "44" * 32)
RUN_KEY = run_key(RUN)


@pytest.fixture(scope="module")
def dhts():
    import hivemind

    first = hivemind.DHT(host_maddrs=LOOPBACK, start=True)
    second = hivemind.DHT(host_maddrs=LOOPBACK, initial_peers=[str(m) for m in first.get_visible_maddrs()], start=True)
    for node in (first, second):  # every node that reads owner-protected entries checks their signatures
        protect(node)
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
        build_receipt(run_id_bytes32=RUN_KEY, epoch=2, peer=PEER.address, records=recs, checkpoint_cid="bafy-ck"),
        PEER.key,
        DOMAIN,
    )
    store = RolloutDirectory(tmp_path)
    store.put(signed, recs)
    with RolloutServer(dht=peer_dht, store=store, prefix=RUN):
        assert publish_receipt(peer_dht, RUN, 2, signed, maddrs=peer_dht.get_visible_maddrs())
        published = fetch_receipts(validator_dht, RUN, 2)
        assert [p.signed for p in published] == [signed]
        assert published[0].holders[0][0] == peer_dht.peer_id.to_base58()
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
    signed = sign_receipt(
        build_receipt(run_id_bytes32=RUN_KEY, epoch=5, peer=PEER.address, records=records(), checkpoint_cid="c"),
        PEER.key,
        DOMAIN,
    )
    value = {"signed": signed.to_json(), "peer_id": "x", "maddrs": []}
    assert peer_dht.store(receipts_key(RUN, 5), subkey=PEER.address, value=value, expiration_time=get_dht_time() + 60)
    assert fetch_receipts(validator_dht, RUN, 5) == []  # well-formed but unprotected: anyone could have written it


def test_an_unreachable_holder_is_records_unavailable(dhts):
    _, validator_dht = dhts
    signed = sign_receipt(
        build_receipt(run_id_bytes32=RUN_KEY, epoch=2, peer=PEER.address, records=records(), checkpoint_cid="bafy-ck"),
        PEER.key,
        DOMAIN,
    )
    fetch = P2PRecordFetcher(validator_dht, prefix=RUN, holders={}, timeout=5)
    with pytest.raises(RecordsUnavailable):
        fetch(signed)
    assert json.loads(json.dumps(signed.to_json())) == signed.to_json()


@pytest.fixture(scope="module")
def protected_dhts():
    """Honest peer, attacker, validator: each DHT node checks [owner:...] signatures with its own RSA key."""
    import hivemind
    from hivemind.utils.crypto import RSAPrivateKey

    from coordination.attest.dht_receipts import receipt_record_validator

    def node(validator, peers=()):
        return hivemind.DHT(host_maddrs=LOOPBACK, initial_peers=list(peers), record_validators=[validator], start=True)

    validators = [type(receipt_record_validator())(RSAPrivateKey()) for _ in range(3)]
    first = node(validators[0])
    peers = [str(m) for m in first.get_visible_maddrs()]
    nodes = [first, node(validators[1], peers), node(validators[2], peers)]
    yield nodes, validators
    for n in nodes:
        n.shutdown()


def test_a_protected_receipt_cannot_be_overwritten_and_a_copier_cannot_hide_its_records(protected_dhts, tmp_path):
    from hivemind.utils import get_dht_time

    (honest_dht, attacker_dht, validator_dht), (honest_key, attacker_key, _) = protected_dhts
    recs = records()
    signed = sign_receipt(
        build_receipt(run_id_bytes32=RUN_KEY, epoch=7, peer=PEER.address, records=recs, checkpoint_cid="bafy-ck"),
        PEER.key,
        DOMAIN,
    )
    good, bad = RolloutDirectory(tmp_path / "good"), RolloutDirectory(tmp_path / "bad")
    good.put(signed, recs)
    bad.put(signed, [dataclasses.replace(r, reward=1.0) for r in recs])  # the attacker serves doctored records
    owner = honest_key.local_public_key
    with RolloutServer(dht=honest_dht, store=good, prefix=RUN), RolloutServer(dht=attacker_dht, store=bad, prefix=RUN):
        assert publish_receipt(honest_dht, RUN, 7, signed, maddrs=honest_dht.get_visible_maddrs(), owner=owner)
        overwrite = attacker_dht.store(
            receipts_key(RUN, 7),
            subkey=PEER.address.encode() + owner,
            value={"signed": {"junk": 1}},
            expiration_time=get_dht_time() + 10**5,
        )
        assert not overwrite
        assert publish_receipt(
            attacker_dht, RUN, 7, signed, maddrs=attacker_dht.get_visible_maddrs(), owner=attacker_key.local_public_key
        )
        (published,) = fetch_receipts(validator_dht, RUN, 7)  # one receipt, two holders
        assert published.signed == signed and len(published.holders) == 2
        attacker = next(h for h in published.holders if h[0] == attacker_dht.peer_id.to_base58())
        honest = next(h for h in published.holders if h[0] == honest_dht.peer_id.to_base58())
        fetch = P2PRecordFetcher(validator_dht, prefix=RUN, holders={signed.key: (attacker, honest)}, timeout=20)
        assert [r for r, _ in fetch(signed)] == recs  # the doctored answer is skipped
        only_attacker = P2PRecordFetcher(validator_dht, prefix=RUN, holders={signed.key: (attacker,)}, timeout=20)
        served = only_attacker(signed)  # handed to the audit, which rules RECORD_NOT_IN_ROOT (not the peer's fault)
        assert not all(verify_record(signed.receipt.rollouts_root, r, p) for r, p in served)


@pytest.mark.parametrize(
    "request_json",
    [
        {"run": "../../../etc", "epoch": 1, "peer": "0x" + "44" * 20},
        {"run": "ab" * 32, "epoch": 1, "peer": "0x" + "44" * 20},  # another run
        {"run": RUN_KEY.hex(), "epoch": -1, "peer": "0x" + "44" * 20},
        {"run": RUN_KEY.hex(), "epoch": True, "peer": "0x" + "44" * 20},
        {"run": RUN_KEY.hex(), "epoch": 1, "peer": "../x"},
        ["not", "an", "object"],
    ],
)
def test_the_rollout_server_refuses_requests_outside_its_run_before_touching_files(request_json, tmp_path):
    server = RolloutServer(dht=None, store=RolloutDirectory(tmp_path), prefix=RUN)
    with pytest.raises(ValueError):
        server.parse_request(json.dumps(request_json).encode())
    assert server._answer(json.dumps(request_json).encode()) is None
    assert server.parse_request(json.dumps({"run": RUN_KEY.hex(), "epoch": 1, "peer": PEER.address.lower()}).encode())
