"""Receipts and records: leaf binding, Merkle proofs, EIP-712 signatures and their domain binding."""

import pytest
from eth_account import Account

from coordination.attest.receipts import SignedReceipt, WorkReceipt, build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord, quantize_logprobs, rollouts_tree, verify_record
from coordination.chain.eip712 import attest_domain
from coordination.errors import AttestationError

PEER = Account.from_key("0x" + "11" * 32)
OTHER = Account.from_key("0x" + "22" * 32)
LEDGER = "0x" + "ab" * 20


def make_record(slot=0, generation=0, reward=1.0, completion="<t>1</t><a>3</a>", logprobs=None):
    ids = [ord(c) for c in completion]
    return RolloutRecord.build(
        slot=slot,
        generation=generation,
        task_seed=7,
        task_index=100 + slot,
        prompt=f"Q:{slot}+3\n",
        completion=completion,
        completion_ids=ids,
        reward=reward,
        logprobs=logprobs if logprobs is not None else [-0.5] * len(ids),
    )


def test_logprobs_quantize_to_milli_nats():
    assert quantize_logprobs([-0.12345, -2.0, -0.0004, -0.0006]) == [-123, -2000, 0, -1]


@pytest.mark.parametrize(
    "field,value",
    [
        ("reward", 0.0),
        ("completion", "<a>4</a>"),
        ("task_index", 999),
        ("logprobs_milli", (-1,) * 16),
        ("slot", 5),
        ("generation", 1),
    ],
)
def test_changing_any_field_changes_the_leaf(field, value):
    import dataclasses

    record = make_record()
    assert dataclasses.replace(record, **{field: value}).leaf() != record.leaf()


def test_every_record_proves_against_the_root_and_a_tampered_one_does_not():
    import dataclasses

    records = [make_record(slot=s, generation=g) for s in range(3) for g in range(2)]
    tree = rollouts_tree(records)
    for i, record in enumerate(records):
        assert verify_record(tree.root, record, tree.proof(i))
    forged = dataclasses.replace(records[2], reward=0.5)
    assert not verify_record(tree.root, forged, tree.proof(2))


def test_record_json_round_trip_keeps_the_leaf():
    record = make_record()
    assert RolloutRecord.from_json(record.to_json()).leaf() == record.leaf()


def test_receipt_counts_and_root_come_from_the_records():
    records = [make_record(slot=s) for s in range(4)]
    receipt = build_receipt(
        run_id_bytes32=b"\x01" * 32, epoch=2, peer=PEER.address, records=records, checkpoint_cid="bafy-ckpt"
    )
    assert receipt.samples == 4
    assert receipt.completion_tokens == sum(len(r.completion_ids) for r in records)
    assert receipt.rollouts_root == rollouts_tree(records).root


def receipt():
    return WorkReceipt(b"\x01" * 32, 3, PEER.address, 8, 100, b"\x02" * 32, "bafy-ckpt")


def test_signed_receipt_recovers_its_peer_and_round_trips_json():
    domain = attest_domain(chain_id=31337, verifying_contract=LEDGER)
    signed = sign_receipt(receipt(), PEER.key, domain)
    signed.verify(domain)
    again = SignedReceipt.from_json(signed.to_json())
    assert again == signed and again.signer(domain) == PEER.address


@pytest.mark.parametrize(
    "other_domain",
    [
        attest_domain(chain_id=1, verifying_contract=LEDGER),  # wrong chain
        attest_domain(chain_id=31337, verifying_contract="0x" + "cd" * 20),  # other deployment
        attest_domain(chain_id=31337, verifying_contract=LEDGER, name="other"),  # wrong domain name
    ],
)
def test_receipt_signed_under_another_domain_is_rejected(other_domain):
    domain = attest_domain(chain_id=31337, verifying_contract=LEDGER)
    signed = sign_receipt(receipt(), PEER.key, other_domain)
    with pytest.raises(AttestationError):
        signed.verify(domain)


def test_receipt_signed_by_someone_else_or_altered_is_rejected():
    import dataclasses

    domain = attest_domain(chain_id=31337)
    forged = sign_receipt(receipt(), OTHER.key, domain)
    with pytest.raises(AttestationError):
        forged.verify(domain)
    honest = sign_receipt(receipt(), PEER.key, domain)
    inflated = SignedReceipt(dataclasses.replace(honest.receipt, samples=16), honest.signature)
    with pytest.raises(AttestationError):
        inflated.verify(domain)


def test_garbage_signature_raises_attestation_error():
    domain = attest_domain(chain_id=31337)
    with pytest.raises(AttestationError):
        SignedReceipt(receipt(), b"\x00" * 65).verify(domain)


@pytest.mark.parametrize(
    "text,ids,lps",
    [
        ("", [], []),
        ("<t>1+2</t><a>3</a>", [5, 0, 2**40], [-1, 0, -123456]),
        ("é" * 40, list(range(70)), [-(10**9)] * 33),
    ],
)
def test_hand_encoded_digests_equal_eth_abi(text, ids, lps):
    from eth_abi import encode
    from eth_utils import keccak

    from coordination.attest.records import completion_digest, logprob_digest

    assert logprob_digest(lps) == keccak(encode(["int256[]"], [lps]))
    assert completion_digest(text, ids) == keccak(encode(["string", "uint256[]"], [text, ids]))


def test_the_fast_rollouts_tree_is_the_oz_standard_tree():
    from coordination.attest.records import RECORD_LEAF_TYPES, RolloutRecord, rollouts_tree
    from coordination.chain.merkle import StandardMerkleTree, leaf_hash

    records = [
        RolloutRecord.build(
            slot=i // 3,
            generation=i % 3,
            task_seed=7,
            task_index=100 + i,
            prompt=f"Q{i}",
            completion="x" * i,
            completion_ids=list(range(i)),
            reward=-0.5 * i,
            logprobs=[-0.1] * i,
        )  # fmt: skip
        for i in range(7)
    ]
    fast = rollouts_tree(records)
    reference = StandardMerkleTree.of([r.leaf_values() for r in records], RECORD_LEAF_TYPES)
    assert fast == reference
    assert all(r.leaf() == leaf_hash(RECORD_LEAF_TYPES, r.leaf_values()) for r in records)
