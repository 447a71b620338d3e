"""EIP-712 validator signatures (one stack, chain/eip712.py): recover to the signer, bind every field and the
domain, order for the contracts; the old import paths re-export the same functions."""

import dataclasses

import pytest
from eth_account import Account
from eth_utils import keccak

from coordination.chain.eip712 import (
    PeriodSettlement,
    attest_domain,
    ledger_domain,
    order_by_signer,
    period_digest,
    quorum_signatures,
    recover_period_signers,
    recover_slash_signers,
    recover_struct_signer,
    recover_void_signers,
    run_key,
    sign_period,
    sign_slash,
    sign_struct,
    sign_void,
    slash_digest,
    staking_domain,
    struct_digest,
)
from coordination.errors import AttestationError

LEDGER = "0x" + "12" * 20
KEYS = [Account.from_key(bytes([7] * 31 + [i + 1])) for i in range(4)]
ROOT = keccak(text="root")
DOMAIN = ledger_domain(31337, LEDGER)
BASE = PeriodSettlement(run_key("run"), 3, 10, 19, ROOT, 60, 600, 1_700_000_000)


def test_period_signature_recovers_to_its_signer():
    sig = sign_period(KEYS[0], DOMAIN, BASE)
    assert len(sig) == 65
    assert recover_period_signers([sig], DOMAIN, BASE) == [KEYS[0].address]


@pytest.mark.parametrize(
    "changed",
    [
        dict(run_id=run_key("other")),
        dict(period=4),
        dict(first_epoch=11),
        dict(last_epoch=20),
        dict(root=keccak(text="x")),
        dict(total_units=61),
        dict(reward=601),
        dict(snapshot=1_700_000_001),
    ],
)
def test_every_field_is_bound(changed):
    sig = sign_period(KEYS[0], DOMAIN, BASE)
    other = dataclasses.replace(BASE, **changed)
    assert recover_period_signers([sig], DOMAIN, other) != [KEYS[0].address]
    assert period_digest(DOMAIN, other) != period_digest(DOMAIN, BASE)


@pytest.mark.parametrize("domain", [ledger_domain(1, LEDGER), ledger_domain(31337, "0x" + "34" * 20)])
def test_the_domain_is_bound(domain):
    sig = sign_period(KEYS[0], DOMAIN, BASE)
    assert recover_period_signers([sig], domain, BASE) != [KEYS[0].address]


def test_a_range_out_of_order_is_a_value_error():
    with pytest.raises(ValueError, match="first_epoch"):
        dataclasses.replace(BASE, first_epoch=20)


def test_void_and_slash_signatures_recover():
    sd = staking_domain(31337, LEDGER)
    assert recover_void_signers([sign_void(KEYS[1], DOMAIN, "run", 2, 5)], DOMAIN, "run", 2, 5) == [KEYS[1].address]
    assert recover_void_signers([sign_void(KEYS[1], DOMAIN, "run", 2, 5)], DOMAIN, "run", 2, 6) != [KEYS[1].address]
    ev = keccak(text="evidence")
    sig = sign_slash(KEYS[2].key, sd, KEYS[3].address, 5_000, ev, 77)  # a raw private key works too
    assert recover_slash_signers([sig], sd, KEYS[3].address, 5_000, ev, 77) == [KEYS[2].address]
    assert recover_slash_signers([sig], sd, KEYS[3].address, 5_000, ev, 78) != [KEYS[2].address]
    assert recover_slash_signers([sig], DOMAIN, KEYS[3].address, 5_000, ev, 77) != [KEYS[2].address]
    assert slash_digest(sd, KEYS[3].address, 5_000, ev, 77) != slash_digest(sd, KEYS[3].address, 4_999, ev, 77)


def test_quorum_signatures_are_ordered_by_signer_address():
    sigs = quorum_signatures(KEYS[::-1], lambda a: sign_period(a, DOMAIN, BASE))
    signers = recover_period_signers(sigs, DOMAIN, BASE)
    assert [int(s, 16) for s in signers] == sorted(int(k.address, 16) for k in KEYS)


def test_order_by_signer_rejects_a_duplicate_signer():
    with pytest.raises(AttestationError, match="signed twice"):
        order_by_signer([(KEYS[0].address, b"a"), (KEYS[1].address, b"b"), (KEYS[0].address.lower(), b"c")])


def test_malformed_signature_is_an_attestation_error():
    with pytest.raises(AttestationError, match="malformed"):
        recover_period_signers([b"\x01" * 10], DOMAIN, BASE)


def test_attestation_structs_go_through_the_same_stack():
    domain = attest_domain(chain_id=31337, verifying_contract=LEDGER)
    fields = (("peer", "address"), ("units", "uint256"))
    message = {"peer": KEYS[1].address, "units": 9}
    sig = sign_struct(KEYS[0].key, domain, "Thing", fields, message)
    assert recover_struct_signer(domain, "Thing", fields, message, sig) == KEYS[0].address
    assert len(struct_digest(domain, "Thing", fields, message)) == 32


def test_run_key_hashes_strings_and_passes_bytes32_through():
    assert run_key("bafyrun") == keccak(text="bafyrun")
    raw = bytes(range(32))
    assert run_key(raw) == raw
    assert run_key("0x" + raw.hex()) == raw
    with pytest.raises(ValueError, match="32 bytes"):
        run_key(b"short")
    with pytest.raises(ValueError, match="empty"):
        run_key("")
