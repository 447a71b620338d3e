"""EIP-712 validator signatures: recover to the signer, bind every field and the domain, order for the contracts."""

import pytest
from eth_account import Account
from eth_utils import keccak

from coordination.chain.signing import (
    ledger_domain,
    order_by_signer,
    period_digest,
    quorum_signatures,
    recover_period_signers,
    recover_slash_signers,
    recover_void_signers,
    run_key,
    sign_period,
    sign_slash,
    sign_void,
    staking_domain,
)
from coordination.errors import AttestationError

LEDGER = "0x" + "12" * 20
KEYS = [Account.from_key(bytes([7] * 31 + [i + 1])) for i in range(4)]
ROOT = keccak(text="root")
DOMAIN = ledger_domain(31337, LEDGER)


def test_period_signature_recovers_to_its_signer():
    sig = sign_period(KEYS[0], DOMAIN, "run", 3, ROOT, 60, 600)
    assert len(sig) == 65
    assert recover_period_signers([sig], DOMAIN, "run", 3, ROOT, 60, 600) == [KEYS[0].address]


@pytest.mark.parametrize(
    "changed",
    [
        dict(run_id="other"),
        dict(period=4),
        dict(root=keccak(text="x")),
        dict(total_units=61),
        dict(reward=601),
        dict(domain=ledger_domain(1, LEDGER)),
        dict(domain=ledger_domain(31337, "0x" + "34" * 20)),
    ],
)
def test_every_field_and_the_domain_are_bound(changed):
    base = dict(domain=DOMAIN, run_id="run", period=3, root=ROOT, total_units=60, reward=600)
    sig = sign_period(KEYS[0], **base)
    other = {**base, **changed}
    assert recover_period_signers([sig], **other) != [KEYS[0].address]
    assert period_digest(**other) != period_digest(**base)


def test_void_and_slash_signatures_recover():
    sd = staking_domain(31337, LEDGER)
    assert recover_void_signers([sign_void(KEYS[1], DOMAIN, "run", 2)], DOMAIN, "run", 2) == [KEYS[1].address]
    ev = keccak(text="evidence")
    sig = sign_slash(KEYS[2].key, sd, KEYS[3].address, 5, ev)  # a raw private key works too
    assert recover_slash_signers([sig], sd, KEYS[3].address, 5, ev) == [KEYS[2].address]
    assert recover_slash_signers([sig], DOMAIN, KEYS[3].address, 5, ev) != [KEYS[2].address]


def test_quorum_signatures_are_ordered_by_signer_address():
    sigs = quorum_signatures(KEYS[::-1], lambda a: sign_period(a, DOMAIN, "run", 0, ROOT, 1, 1))
    signers = recover_period_signers(sigs, DOMAIN, "run", 0, ROOT, 1, 1)
    assert [int(s, 16) for s in signers] == sorted(int(k.address, 16) for k in KEYS)


def test_order_by_signer_rejects_a_duplicate_signer():
    with pytest.raises(AttestationError, match="signed twice"):
        order_by_signer([(KEYS[0].address, b"a"), (KEYS[1].address, b"b"), (KEYS[0].address.lower(), b"c")])


def test_malformed_signature_is_an_attestation_error():
    with pytest.raises(AttestationError, match="65 bytes"):
        recover_period_signers([b"\x01" * 10], DOMAIN, "run", 0, ROOT, 1, 1)


def test_run_key_hashes_strings_and_passes_bytes32_through():
    assert run_key("bafyrun") == keccak(text="bafyrun")
    raw = bytes(range(32))
    assert run_key(raw) == raw
    assert run_key("0x" + raw.hex()) == raw
    with pytest.raises(ValueError, match="32 bytes"):
        run_key(b"short")
    with pytest.raises(ValueError, match="empty"):
        run_key("")
