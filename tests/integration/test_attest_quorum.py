"""Signature sets for a period: the off-chain twin rejects exactly what the contract rejects, with the same error."""

import pytest
from eth_account import Account

from coordination.chain.clock import chain_now
from coordination.chain.deploy import TOKEN, DeployParams
from coordination.chain.eip712 import (
    SECP256K1_HALF_N,
    Eip712Domain,
    PeriodSettlement,
    QuorumRejected,
    ledger_domain,
    require_quorum_offchain,
    sign_period,
)
from coordination.errors import ChainError

pytestmark = pytest.mark.chain

RUN = b"\x07" * 32
ROOT = b"\x09" * 32
SECP256K1_N = 2 * SECP256K1_HALF_N + 1


@pytest.fixture(scope="module")
def chain():
    from coordination.chain.sandbox import Sandbox

    box = Sandbox.create(
        accounts=4, params=DeployParams(min_validator_stake=1_000 * TOKEN, validator_quorum_bps=6_000)
    )
    from coordination.chain.sandbox import register_validators

    validators = sorted(box.accounts[:3], key=lambda a: int(a.address, 16))
    register_validators(box, {v: 1_000 * TOKEN for v in validators})
    box.c.token.approve(box.c.ledger.address, 10**6, sender=box.deployer)
    box.c.ledger.fund(10**6, sender=box.deployer)
    box.s = PeriodSettlement(RUN, 0, 0, 0, ROOT, 10, 1000, chain_now(box.w3) - 1)
    return box, validators, box.accounts[3]


def high_s(signature: bytes) -> bytes:
    """The malleated twin (n - s, flipped v) of a valid signature: same signer, rejected by OZ ECDSA."""
    s = int.from_bytes(signature[32:64], "big")
    return signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])


def signature_sets(box, validators, outsider):
    domain = box.c.ledger.domain()
    sign = lambda acct, d=domain: sign_period(acct, d, box.s)  # noqa: E731
    a, b, c = (sign(v) for v in validators)
    other = Eip712Domain("OtherLedger", "1", domain.chain_id, domain.verifying_contract)
    return {
        "valid pair": [a, b],
        "all three": [a, b, c],
        # a signature over another domain recovers to some unrelated address (checked first, so the order holds)
        "forged by a non-validator": [sign(outsider), a],
        "wrong domain name": [sign(validators[1], other), a],
        "wrong chain": [sign(validators[1], ledger_domain(1, domain.verifying_contract)), a],
        "wrong contract": [sign(validators[1], ledger_domain(domain.chain_id, box.c.staking.address)), a],
        "duplicate signer": [a, a],
        "unsorted": [b, a],
        "below quorum": [a],
        "empty": [],
        "truncated": [a, b[:64]],
        "malleated high-s": [a, high_s(b)],
    }


def onchain_outcome(box, digest, signatures):
    try:
        return ("ok", box.c.staking.require_quorum_at(digest, signatures, box.s.snapshot))
    except ChainError as exc:
        return (exc.error_name, tuple(exc.error_args))


def offchain_outcome(box, validators, digest, signatures):
    stakes = box.c.staking.validator_stakes_at([v.address for v in validators], box.s.snapshot)
    required = box.c.staking.required_quorum_stake_at(box.s.snapshot)
    try:
        return ("ok", require_quorum_offchain(digest, signatures, validator_stakes=stakes, required=required))
    except QuorumRejected as exc:
        return (exc.error_name, exc.error_args)


def normalise(outcome):
    name, args = outcome
    if name == "ok":
        return outcome
    return name, tuple(a.lower() if isinstance(a, str) else a for a in args)


def test_every_signature_set_gets_the_same_outcome_off_and_on_chain(chain):
    box, validators, outsider = chain
    digest = box.c.ledger.period_digest(box.s)
    outcomes = {}
    for name, signatures in signature_sets(box, validators, outsider).items():
        on = normalise(onchain_outcome(box, digest, signatures))
        off = normalise(offchain_outcome(box, validators, digest, signatures))
        assert off == on, name
        outcomes[name] = on[0]
    assert outcomes == {
        "valid pair": "ok",
        "all three": "ok",
        "forged by a non-validator": "NotAValidator",
        "wrong domain name": "NotAValidator",
        "wrong chain": "NotAValidator",
        "wrong contract": "NotAValidator",
        "duplicate signer": "SignersNotSorted",
        "unsorted": "SignersNotSorted",
        "below quorum": "QuorumNotReached",
        "empty": "NoSignatures",
        "truncated": "ECDSAInvalidSignatureLength",
        "malleated high-s": "ECDSAInvalidSignatureS",
    }


def test_submit_period_reverts_with_the_error_the_twin_predicted(chain):
    box, validators, outsider = chain
    sets = signature_sets(box, validators, outsider)
    for name in ("wrong chain", "duplicate signer", "below quorum"):
        with pytest.raises(ChainError) as err:
            box.c.ledger.submit_period(box.s, sets[name], sender=box.deployer)
        digest = box.c.ledger.period_digest(box.s)
        assert err.value.error_name == offchain_outcome(box, validators, digest, sets[name])[0]
    box.c.ledger.submit_period(box.s, sets["valid pair"], sender=box.deployer)
    assert box.c.ledger.get_period(RUN, 0).root == ROOT


def test_the_twin_recovers_the_same_address_as_eth_account(chain):
    box, validators, _ = chain
    digest = box.c.ledger.period_digest(box.s)
    signature = bytes(Account._sign_hash(digest, validators[0].key).signature)
    from coordination.chain.eip712 import recover_like_oz

    assert recover_like_oz(digest, signature) == validators[0].address
