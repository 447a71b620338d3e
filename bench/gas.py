"""Gas per contract operation, and how settlement and claims scale with the number of peers.

    python bench/gas.py            # ~30 s on 2 CPU cores; writes outputs/bench/gas.json and gas.png

Runs on the in-process eth-tester chain (py-evm), so it needs no node; gas is the EVM's, identical
on anvil or mainnet for the same state. What it shows:
- every operation's gas next to a plain ERC20 transfer (the baseline ratio);
- `submitPeriod` costs the same for 10 and 1,000 peers (only the Merkle root goes on chain; the few
  gas of difference are calldata bytes of the larger totalUnits number);
- `claim` grows linearly in the proof length, i.e. in log2(peers) (fit: gas = a + b * depth);
- the settle, claim, nominate and promote figures with the rules of issue 12 (stake snapshots, epoch
  ranges, bonds, claim windows, weights-hash nominations, the timelock) next to the previous figures.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_utils import keccak  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from coordination.chain.clock import advance_time, chain_now  # noqa: E402
from coordination.chain.deploy import DeployParams, deploy_contract  # noqa: E402
from coordination.chain.eip712 import (  # noqa: E402
    PeriodSettlement,
    quorum_signatures,
    run_key,
    sign_period,
    sign_slash,
    sign_struct,
)
from coordination.chain.governance import Support, promotion_proposal  # noqa: E402
from coordination.chain.merkle import StandardMerkleTree  # noqa: E402
from coordination.chain.sandbox import Sandbox, activate_validators  # noqa: E402
from coordination.governance.transparent_eval import EVAL_ATTESTATION_FIELDS, eval_domain  # noqa: E402

OUT = Path("outputs/bench")
PARAMS = DeployParams(
    unbonding_delay=20,
    activation_delay=5,
    challenge_window=10,
    voting_delay=1,
    voting_period=20,
    min_validator_stake=1000,
    proposal_threshold=1,
    quorum_percent=1,
    min_peer_bond=1,
    max_period_reward=10**24,
    timelock_delay=5,
)
# the previous figures (before stake snapshots, epoch ranges, bonds and the timelock), to compare with
PREVIOUS = {
    "submitPeriod": 186_700,
    "claim intercept": 135_700,
    "claim gas per level": 754,
    "nominate": 100_900,
    "promote: queue": 150_200,
    "promote: execute": 235_300,
}
SETTLE_PEERS = (10, 1000)
CLAIM_PEERS = (2, 4, 16, 64, 256, 1024, 4096)


def peer_addresses(n: int) -> list[str]:
    return ["0x" + keccak(text=f"peer {i}")[:20].hex() for i in range(n)]


def operation_gas(box: Sandbox) -> dict[str, int]:
    """Gas of each user-facing operation once, in a realistic order."""
    c, d = box.c, box.deployer
    user, v = box.accounts[0].address, box.accounts[1:4]
    gas = {"HiveToken.transfer": c.token.transfer(user, 1, sender=d)["gasUsed"]}
    gas["HiveToken.approve"] = c.token.approve(c.staking.address, 10**9, sender=user)["gasUsed"]
    gas["Staking.stake (first)"] = c.staking.stake(500, sender=user)["gasUsed"]
    advance_time(box.w3, 1)
    gas["Staking.stake (again)"] = c.staking.stake(500, sender=user)["gasUsed"]
    gas["Staking.requestUnstake"] = c.staking.request_unstake(100, sender=user)["gasUsed"]
    advance_time(box.w3, PARAMS.unbonding_delay + 1)
    gas["Staking.withdraw"] = c.staking.withdraw(sender=user)["gasUsed"]
    for a in v:
        box.approve_and_stake(a, 2000)
    gas["Staking.registerValidator"] = c.staking.register_validator(sender=v[0].address)["gasUsed"]
    for a in v[1:]:
        c.staking.register_validator(sender=a.address)
    advance_time(box.w3, PARAMS.activation_delay + 1)
    gas["Staking.activateValidator"] = c.staking.activate_validator(v[0].address, sender=d)["gasUsed"]
    activate_validators(box.w3, c.staking, [a.address for a in v[1:]], sender=d)
    ev, dom, t = keccak(text="evidence"), c.staking.domain(), chain_now(box.w3) - 1
    sigs = quorum_signatures(v, lambda a: sign_slash(a, dom, user, 50, ev, t))
    gas["Staking.slash (3 signatures)"] = c.staking.slash(user, 50, ev, t, sigs, sender=d)["gasUsed"]
    c.token.approve(c.ledger.address, 10**30, sender=d)
    gas["ContributionLedger.fund"] = c.ledger.fund(10**24, sender=d)["gasUsed"]
    return gas


def settle(box: Sandbox, run: str, period: int, tree: StandardMerkleTree, total: int, signers) -> int:
    dom = box.c.ledger.domain()
    s = PeriodSettlement(run_key(run), period, period, period, tree.root, total, 10**18, chain_now(box.w3) - 1)
    sigs = quorum_signatures(signers, lambda a: sign_period(a, dom, s))
    return box.c.ledger.submit_period(s, sigs, sender=box.deployer)["gasUsed"]


def scaling_gas(box: Sandbox, progress: Progress) -> tuple[dict, dict, dict]:
    validators = box.accounts[1:4]
    settle_gas, claim_gas, depth = {}, {}, {}
    sizes = sorted(set(SETTLE_PEERS) | set(CLAIM_PEERS))
    task = progress.add_task("trees: settle + claim", total=len(sizes))
    bonded = box.accounts[0].address  # staked in operation_gas: a claimer must hold a bond
    for period, n in enumerate(sizes):
        values = [(a, i + 1) for i, a in enumerate(peer_addresses(n))]
        values[n // 2] = (bonded, n // 2 + 1)
        tree = StandardMerkleTree.of(values, ["address", "uint256"])
        gas = settle(box, "bench", period, tree, sum(u for _, u in values), validators)
        if n in SETTLE_PEERS:
            settle_gas[n] = gas
        if n in CLAIM_PEERS:
            advance_time(box.w3, 11)
            i = n // 2
            depth[n] = len(tree.proof(i))
            claim_gas[n] = box.c.ledger.claim("bench", period, *values[i], tree.proof(i), sender=box.deployer)[
                "gasUsed"
            ]
        progress.advance(task)
    return settle_gas, claim_gas, depth


def governance_gas(box: Sandbox) -> dict[str, int]:
    c, proposer = box.c, box.accounts[1].address
    cid, reg = "bafkrei-bench", c.registry
    gas = {"CheckpointRegistry.nominate": reg.nominate("bench", cid, keccak(text="w"), sender=proposer)["gasUsed"]}
    advance_time(box.w3, 1)
    gas["CheckpointRegistry.fixSeed"] = reg.fix_seed("bench", cid, sender=proposer)["gasUsed"]
    root, t = keccak(text="records"), chain_now(box.w3) - 1
    message = {"checkpoint": cid, "seed": reg.eval_seed_int("bench", cid), "correct": 40, "total": 64}
    message["recordsRoot"] = root
    domain = eval_domain(box.w3.eth.chain_id, reg.address)
    sign = lambda a: sign_struct(a, domain, "EvalAttestation", EVAL_ATTESTATION_FIELDS, message)  # noqa: E731
    sigs = quorum_signatures(box.accounts[1:4], sign)
    recorded = reg.record_eval("bench", cid, 40, 64, root, t, sigs, sender=proposer)
    gas["CheckpointRegistry.recordEval (3 signatures)"] = recorded["gasUsed"]
    digest = reg.events("EvalRecorded", recorded)[0]["evalDigest"]
    proposal = promotion_proposal(c.registry.address, "bench", cid, digest)
    gas["RunGovernor.propose (promote)"] = c.governor._send(
        "propose", *proposal.as_args(), proposal.description, sender=proposer
    )["gasUsed"]
    pid = c.governor.proposal_id(proposal)
    advance_time(box.w3, 2)
    gas["RunGovernor.castVote"] = c.governor.cast_vote(pid, Support.FOR, sender=proposer)["gasUsed"]
    advance_time(box.w3, 21)
    gas["RunGovernor.queue -> timelock"] = c.governor.queue(proposal, sender=proposer)["gasUsed"]
    advance_time(box.w3, PARAMS.timelock_delay + 1)
    gas["RunGovernor.execute -> timelock -> promote"] = c.governor.execute(proposal, sender=proposer)["gasUsed"]
    return gas


def deploy_gas(box: Sandbox) -> dict[str, int]:
    d = box.deployer
    tok = deploy_contract(box.w3, "HiveToken", "H", "H", d, 1, sender=d)
    stk = deploy_contract(box.w3, "Staking", tok[0], 1, 1, 1, 5000, d, d, sender=d)
    led = deploy_contract(box.w3, "ContributionLedger", stk[0], 1, 1, 1, 1, sender=d)
    tl = deploy_contract(box.w3, "RunTimelock", 1, [], ["0x" + "00" * 20], d, sender=d)
    gov = deploy_contract(box.w3, "RunGovernor", stk[0], tl[0], 1, 10, 1, 4, sender=d)
    reg = deploy_contract(box.w3, "CheckpointRegistry", tl[0], stk[0], sender=d)
    return {
        f"deploy {n}": g
        for n, (_, g) in zip(
            ["HiveToken", "Staking", "ContributionLedger", "RunTimelock", "RunGovernor", "CheckpointRegistry"],
            [tok, stk, led, tl, gov, reg],
            strict=True,
        )
    }


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def report(ops: dict, settle_gas: dict, claim_gas: dict, depth: dict) -> dict:
    console = Console()
    base = ops["HiveToken.transfer"]
    t = Table(title="gas per operation (baseline: ERC20 transfer)")
    for col in ("operation", "gas", "x transfer"):
        t.add_column(col, justify="right" if col != "operation" else "left")
    for name, g in ops.items():
        t.add_row(name, f"{g:,}", f"{g / base:.2f}")
    console.print(t)
    lo, hi = SETTLE_PEERS
    console.print(
        f"submitPeriod: {lo} peers {settle_gas[lo]:,} gas | {hi} peers {settle_gas[hi]:,} gas | "
        f"ratio {settle_gas[hi] / settle_gas[lo]:.4f} (the difference is calldata: a larger totalUnits)"
    )
    a, b = linear_fit([depth[n] for n in CLAIM_PEERS], [claim_gas[n] for n in CLAIM_PEERS])
    t = Table(title=f"claim gas vs peers (fit: {a:,.0f} + {b:,.0f} x depth)")
    for col in ("peers", "log2(peers)", "proof depth", "gas", "x 2 peers", "fit residual"):
        t.add_column(col, justify="right")
    for n in CLAIM_PEERS:
        t.add_row(
            str(n),
            f"{math.log2(n):.0f}",
            str(depth[n]),
            f"{claim_gas[n]:,}",
            f"{claim_gas[n] / claim_gas[CLAIM_PEERS[0]]:.3f}",
            f"{claim_gas[n] - (a + b * depth[n]):+,.0f}",
        )
    console.print(t)
    now = {
        "submitPeriod": settle_gas[lo],
        "claim intercept": round(a),
        "claim gas per level": round(b),
        "nominate": ops["CheckpointRegistry.nominate"],
        "promote: queue": ops["RunGovernor.queue -> timelock"],
        "promote: execute": ops["RunGovernor.execute -> timelock -> promote"],
    }
    t = Table(title="with the checks of issue 12 vs the previous figures")
    for col in ("operation", "previous", "now", "now / previous"):
        t.add_column(col, justify="right" if col != "operation" else "left")
    for name, old in PREVIOUS.items():
        t.add_row(name, f"{old:,}", f"{now[name]:,}", f"{now[name] / old:.3f}")
    console.print(t)
    return {
        "versus_previous": {"previous": PREVIOUS, "now": now},
        "operations": ops,
        "baseline": "HiveToken.transfer",
        "submit_period": settle_gas,
        "submit_period_ratio": settle_gas[hi] / settle_gas[lo],
        "claim": claim_gas,
        "claim_depth": depth,
        "claim_fit": {"intercept": a, "gas_per_level": b},
    }


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    peers = sorted(result["claim"])
    ax1.plot([math.log2(n) for n in peers], [result["claim"][n] for n in peers], "o-", label="claim")
    fit = result["claim_fit"]
    ax1.plot(
        [math.log2(n) for n in peers],
        [fit["intercept"] + fit["gas_per_level"] * result["claim_depth"][n] for n in peers],
        "--",
        label="linear fit in proof depth",
    )
    ax1.set(xlabel="log2(peers)", ylabel="gas", title="claim gas grows with log2(peers)")
    ax1.legend()
    names = [f"{n} peers" for n in result["submit_period"]]
    ax2.bar(names, list(result["submit_period"].values()), color=["tab:blue", "tab:orange"])
    ax2.set(ylabel="gas", title="submitPeriod: same gas for 10 and 1,000 peers")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with Progress() as progress:
        task = progress.add_task("operations", total=3)
        box = Sandbox.create(accounts=4, params=PARAMS)
        ops = operation_gas(box)
        progress.advance(task)
        ops |= governance_gas(box) | deploy_gas(box)
        progress.advance(task)
        settle_gas, claim_gas, depth = scaling_gas(box, progress)
        progress.advance(task)
    result = report(ops, settle_gas, claim_gas, depth)
    (OUT / "gas.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    plot(result, OUT / "gas.png")
    Console().print(f"wrote {OUT / 'gas.json'} and {OUT / 'gas.png'}")


if __name__ == "__main__":
    main()
