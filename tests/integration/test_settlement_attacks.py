"""Adversarial settlement: each attack against the same honest period, on an in-process chain.

The honest period: four validators (stakes 14.5%, 14.5%, 35.5%, 35.5%; quorum 60% of stake at the snapshot),
two honest peers and one cheater whose every record is wrong. Validators rule from verdict reports, re-check
any FRAUD evidence before co-signing (`recheck`), sign a period document each; the aggregator submits.
Whatever the attack, honest peers are paid exactly `reward * units / totalUnits`, the cheater is unpaid and
slashed `SLASH_BPS` of its active + unbonding stake, and nothing is paid twice.
"""

import enum

import pytest

from coordination.attest.receipts import build_receipt, sign_receipt
from coordination.attest.records import RolloutRecord
from coordination.chain.claims import ClaimTicket
from coordination.chain.clock import advance_time, chain_now
from coordination.chain.deploy import TOKEN, DeployParams
from coordination.chain.sandbox import ANY, Sandbox, register_validators, revert_of
from coordination.errors import ChainError
from coordination.verify.payout import sign_period_document, submit_period_documents
from coordination.verify.rulings import Finding, Kind, Verdict, sign_verdict, verdict_json

pytestmark = pytest.mark.chain

RUN_KEY = b"\x05" * 32
REWARD = 1_000_003
PEER_BOND = 10 * TOKEN
SLASH_BPS = 5_000
VALIDATOR_STAKES = (1_450 * TOKEN, 1_450 * TOKEN, 3_550 * TOKEN, 3_550 * TOKEN)
UNITS = {"honest0": 6, "honest1": 2}


class Attack(enum.Enum):
    NONE = "none"
    MINORITY_FRAMING = "two validators with 29% of the stake sign a made-up FRAUD against honest0"
    UNSTAKE_TO_ESCAPE = "the cheater requests unstake of everything after publishing"
    STAKE_JIGGLING = "the cheater changes its stake by 2 wei between validators' signings"
    STAKE_HEAVY_NEWCOMER = "a newcomer with twice the validators' stake registers and settles alone"
    DOUBLE_SETTLEMENT = "the same verdict files are settled again as the next period"
    SPLIT_EVIDENCE = "each validator cites another wrong record of the cheater's receipt"


@pytest.fixture(scope="module")
def chain():
    box = Sandbox.create(
        accounts=8,
        fund_each=50_000 * TOKEN,
        params=DeployParams(
            min_validator_stake=1_000 * TOKEN,
            validator_quorum_bps=6_000,
            activation_delay=3600,
            challenge_window=60,
            unbonding_delay=7200,
            min_peer_bond=PEER_BOND,
        ),
    )
    validators, peers = box.accounts[:4], dict(zip(("honest0", "honest1", "cheater"), box.accounts[4:7], strict=True))
    for p in peers.values():
        box.approve_and_stake(p, PEER_BOND)
    register_validators(box, dict(zip(validators, VALIDATOR_STAKES, strict=True)))
    box.c.token.approve(box.c.ledger.address, 10 * REWARD, sender=box.deployer)
    box.c.ledger.fund(10 * REWARD, sender=box.deployer)
    return box, validators, peers, box.accounts[7]


@pytest.fixture
def fresh(chain):
    box = chain[0]
    snap = box.snapshot()
    yield chain
    box.revert(snap)


def receipt(box, peer, tokens, records=3):
    rows = [
        RolloutRecord.build(
            slot=s,
            generation=0,
            task_seed=1,
            task_index=s,
            prompt=f"Q{s}",
            completion="y" * tokens,
            completion_ids=list(range(tokens)),
            reward=0.0,
            logprobs=[-1.0] * tokens,
        )
        for s in range(records)
    ]
    r = build_receipt(run_id_bytes32=RUN_KEY, epoch=0, peer=peer.address, records=rows, checkpoint_cid="bafy")
    return sign_receipt(r, peer.key, box.c.ledger.domain().as_dict())


def verdict(box, validator, signed, finding=None):
    domain = box.c.ledger.domain().as_dict()
    v = Verdict.of(signed.receipt.digest(domain), signed.receipt, finding)
    return verdict_json(sign_verdict(v, validator.key, domain), domain, signed)


def wrong(slot, kind=Kind.WRONG_REWARD):
    return Finding(kind, f"record {slot}: claimed reward 1.0, recomputed 0.0", slot, 0)


def honest_reports(box, validators, peers, attack):
    receipts = {name: receipt(box, p, UNITS.get(name, 5)) for name, p in peers.items()}
    reports = []
    for i, v in enumerate(validators):
        slot = i if attack is Attack.SPLIT_EVIDENCE else 0
        kind = (
            (Kind.WRONG_REWARD, Kind.WRONG_LOGPROBS)[i % 2] if attack is Attack.SPLIT_EVIDENCE else Kind.WRONG_REWARD
        )
        entries = [verdict(box, v, receipts["cheater"], wrong(slot, kind))]
        for name in UNITS:
            framed = attack is Attack.MINORITY_FRAMING and i < 2 and name == "honest0"
            entries.append(verdict(box, v, receipts[name], wrong(1, Kind.WRONG_LOGPROBS) if framed else None))
        reports.append({"verdicts": entries})
    return reports


def recheck_for(peers):
    """Stand-in for re-running a cited check against the canonical checkpoint: only the cheater's records are wrong."""
    cheater = peers["cheater"].address
    return lambda signed, evidence: signed.receipt.peer == cheater


def documents(box, signers, reports, peers, *, snapshot, period=0, first=0, last=0, between=None):
    docs = []
    for v in signers:
        docs.append(
            sign_period_document(
                account=v,
                reports=reports,
                clients=box.c,
                run_key=RUN_KEY,
                period=period,
                first_epoch=first,
                last_epoch=last,
                payout=REWARD,
                snapshot=snapshot,
                slash_bps=SLASH_BPS,
                recheck=recheck_for(peers),
            )
        )
        if between is not None:
            between()
    return docs


def claim_all(box, result):
    advance_time(box.w3, 61)
    paid = {}
    for path in result["claims"]:
        t = ClaimTicket.load(path)
        before = box.c.token.balance_of(t.peer)
        box.c.ledger.claim(t.run_key, t.period, t.peer, t.units, list(t.proof), sender=t.peer)
        paid[t.peer] = box.c.token.balance_of(t.peer) - before
    return paid


def stake_total(box, account):
    return box.c.staking.stake_of(account.address) + box.c.staking.pending_withdrawal(account.address)[0]


def assert_honest_outcome(box, peers, result, paid, cheater_before):
    total = sum(UNITS.values())
    assert paid == {peers[n].address: REWARD * u // total for n, u in UNITS.items()}
    assert peers["cheater"].address not in {ClaimTicket.load(p).peer for p in result["claims"]}
    assert [s["peer"] for s in result["slashed"]] == [peers["cheater"].address]
    assert stake_total(box, peers["cheater"]) == cheater_before - cheater_before * SLASH_BPS // 10_000
    for name in UNITS:
        assert stake_total(box, peers[name]) == PEER_BOND


@pytest.mark.parametrize("attack", list(Attack), ids=[a.name.lower() for a in Attack])
def test_the_honest_period_survives(fresh, tmp_path, attack):
    box, validators, peers, newcomer = fresh
    reports = honest_reports(box, validators, peers, attack)
    snapshot = chain_now(box.w3) - 1
    cheater_before = stake_total(box, peers["cheater"])
    between, jiggled = None, []
    if attack is Attack.UNSTAKE_TO_ESCAPE:
        box.c.staking.request_unstake(PEER_BOND, sender=peers["cheater"].address)
    if attack is Attack.STAKE_JIGGLING:

        def between():  # +2 wei after every other signature
            if len(jiggled) % 2 == 0:
                box.approve_and_stake(peers["cheater"], 2)
            jiggled.append(2 if len(jiggled) % 2 == 0 else 0)

    if attack is Attack.STAKE_HEAVY_NEWCOMER:
        newcomer_takes_everything(box, newcomer, tmp_path)
    docs = documents(box, validators, reports, peers, snapshot=snapshot, between=between)
    if attack is Attack.MINORITY_FRAMING:
        # the framers' own documents drop honest0; they hold 29%: their settlement has no quorum
        assert {d["root"] for d in docs[:2]} == {d["root"] for d in docs[2:]}  # re-check refused the framing
    result = submit_period_documents(docs, clients=box.c, sender=box.deployer, claims_dir=tmp_path / "claims")
    if attack is Attack.STAKE_JIGGLING:
        assert len({(s["bps"], s["snapshot"]) for d in docs for s in d["slashes"]}) == 1  # one message for all
        cheater_before += sum(jiggled)
    paid = claim_all(box, result)
    assert_honest_outcome(box, peers, result, paid, cheater_before)
    if attack is Attack.DOUBLE_SETTLEMENT:
        again = documents(box, validators, reports, peers, snapshot=chain_now(box.w3) - 1, period=1)
        with pytest.raises(ChainError) as err:
            submit_period_documents(again, clients=box.c, sender=box.deployer, claims_dir=tmp_path / "again")
        assert err.value.error_name == "EpochRangeOverlaps"
        assert err.value.error_args == (RUN_KEY, 0, 1)
    if attack is Attack.UNSTAKE_TO_ESCAPE:
        advance_time(box.w3, 7200)
        before = box.c.token.balance_of(peers["cheater"].address)
        box.c.staking.withdraw(sender=peers["cheater"].address)
        assert box.c.token.balance_of(peers["cheater"].address) - before == PEER_BOND // 2  # the slashed half stays


def newcomer_takes_everything(box, newcomer, tmp_path):
    """Stake twice the validators' total, register, and sign a period paying only itself: refused."""
    from coordination.chain.eip712 import PeriodSettlement, sign_period
    from coordination.verify.payout import contribution_tree

    heavy = 2 * sum(VALIDATOR_STAKES)
    box.c.token.transfer(newcomer.address, heavy, sender=box.deployer)
    box.approve_and_stake(newcomer, heavy)
    box.c.staking.register_validator(sender=newcomer.address)
    advance_time(box.w3, 2)
    table = {newcomer.address: 1000}
    s = PeriodSettlement(RUN_KEY, 0, 0, 0, contribution_tree(table).root, 1000, REWARD, chain_now(box.w3) - 1)
    assert revert_of(
        lambda: box.c.ledger.submit_period(
            s, [sign_period(newcomer, box.c.ledger.domain(), s)], sender=newcomer.address
        )
    ) == ("NotAValidator", (newcomer.address,))  # not active at any past snapshot
    assert revert_of(lambda: box.c.staking.activate_validator(newcomer.address, sender=newcomer.address)) == (
        "ActivationPending",
        (newcomer.address, ANY, ANY),
    )


def test_framing_without_recheck_still_needs_a_stake_quorum(fresh, tmp_path):
    """Even validators that trusted every cited finding cannot let a 29% minority's FRAUD stand."""
    box, validators, peers, _ = fresh
    reports = honest_reports(box, validators, peers, Attack.MINORITY_FRAMING)
    snapshot = chain_now(box.w3) - 1
    docs = [
        sign_period_document(
            account=v,
            reports=reports,
            clients=box.c,
            run_key=RUN_KEY,
            period=0,
            first_epoch=0,
            last_epoch=0,
            payout=REWARD,
            snapshot=snapshot,
            slash_bps=SLASH_BPS,
        )
        for v in validators
    ]
    assert all(peers["honest0"].address in d["table"] for d in docs)
    assert all(d["slashes"] == [] or [s["peer"] for s in d["slashes"]] == [peers["cheater"].address] for d in docs)
    result = submit_period_documents(docs, clients=box.c, sender=box.deployer, claims_dir=tmp_path)
    assert [s["peer"] for s in result["slashed"]] == [peers["cheater"].address]


def test_slash_signatures_bind_their_evidence_and_snapshot(fresh):
    """Signatures collected for one (receipt, kind) cannot slash for another, nor count at another snapshot."""
    from coordination.chain.eip712 import quorum_signatures, sign_slash

    box, validators, peers, _ = fresh
    t, evidence, honest = chain_now(box.w3) - 1, b"\x01" * 32, peers["honest0"].address
    sigs = quorum_signatures(
        validators[2:], lambda a: sign_slash(a, box.c.staking.domain(), honest, 5_000, evidence, t)
    )
    for other_evidence, other_t in ((b"\x02" * 32, t), (evidence, t - 1)):
        with pytest.raises(ChainError) as err:
            box.c.staking.slash(honest, 5_000, other_evidence, other_t, sigs, sender=box.deployer)
        assert err.value.error_name in {"NotAValidator", "SignersNotSorted"}
        assert not {v.address for v in validators} & set(err.value.error_args)
    assert stake_total(box, peers["honest0"]) == PEER_BOND
