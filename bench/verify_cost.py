"""Validator compute vs peer training compute per epoch, and the detection probability of each cheat.

    python bench/verify_cost.py                    # default rate 0.1, 16 rollouts/receipt, 8 trials per cheat
    python bench/verify_cost.py --rate 0.05 --trials 20 --prompts 8

One epoch of one peer on the tiny Qwen2 (hidden 64, 2 layers, the run spec's default): rollouts with
verifiable sampling + the shared log-prob pass (what a peer must do to sign a receipt), plus one
LoRA forward/backward over the batch (the GRPO step's floor). One validator audits the receipt at
`--rate`. Prints wall-clock and forward-token ratios (goal <= 5%), then per cheat kind the analytic
and the empirical detection probability at that rate (one validator, and a quorum of 3). Writes
outputs/bench/verify_cost.json and .png. The validator time is the median of 5 audits; the peer's
train step is a floor (TRL's GRPO step does more), so the printed ratio is an upper bound.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support/: honest generator, adversaries

from eth_account import Account  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from support.adversaries import Cheat, PeerContext, fabricate_completion, publish_as  # noqa: E402
from support.honest_rollouts import RolloutPlan, generate_rollouts  # noqa: E402

from coordination.attest.rollout_store import records_with_proofs  # noqa: E402
from coordination.attest.rollouts import task_reward  # noqa: E402
from coordination.attest.typed_data import attest_domain  # noqa: E402
from coordination.verify.audit_draw import rollouts_to_check  # noqa: E402
from coordination.verify.run_facts import RunFacts  # noqa: E402
from coordination.verify.validator import DEFAULT_ROLLOUT_RATE, Validator  # noqa: E402

OUT_DIR = Path("outputs/bench")
RUN, RUN_KEY, CHECKPOINT = "bafy-bench-run", b"\x0b" * 32, "bafy-bench-ck"
DOMAIN = attest_domain(chain_id=31337)
GROUP, MAX_TOKENS = 4, 24
PARTIAL = "fabricated_one_rollout"  # fabricates a single completion of the receipt: the hardest case


def build_world():
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config
    from trainer.tasks import get_task

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(tiny_config(tok, hidden_size=64, num_hidden_layers=2)).eval()
    task = get_task("arithmetic", digits=2)
    facts = RunFacts(
        run_id=RUN,
        run_id_bytes32=RUN_KEY,
        domain=DOMAIN,
        task=task,
        task_seed=0,
        reward_fn=task_reward(task),
        group_size=GROUP,
        max_new_tokens=MAX_TOKENS,
        temperature=1.0,
        load_policy=lambda cid: (model, tok),
    )
    return model, tok, task, facts


def peer_records(world, account, epoch, prompts):
    model, tok, task, facts = world
    plan = RolloutPlan(
        run_id=RUN,
        epoch=epoch,
        peer=account.address,
        task_seed=0,
        num_prompts=prompts,
        group_size=GROUP,
        max_new_tokens=MAX_TOKENS,
        temperature=1.0,
    )
    return generate_rollouts(model, tok, task, plan, reward_fn=facts.reward_fn)


def lora_train_step_seconds(world, records) -> float:
    """One forward + backward of a LoRA policy-gradient loss over the epoch's rollouts (batched, padded)."""
    import torch
    from peft import LoraConfig, get_peft_model

    model, tok, task, _ = world
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"]))
    seqs = [
        tok.encode(task.prompt(task.sample(0, r.task_index)), add_special_tokens=False) + list(r.completion_ids)
        for r in records
    ]
    width = max(map(len, seqs))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(s)) + s for s in seqs])
    mask = (ids != tok.pad_token_id).long()
    start = time.perf_counter()
    peft_model.train()
    logp = torch.log_softmax(peft_model(input_ids=ids, attention_mask=mask).logits[:, :-1], -1)
    loss = -(logp.gather(2, ids[:, 1:].unsqueeze(2)).squeeze(2) * mask[:, 1:]).sum() / mask.sum()
    loss.backward()
    seconds = time.perf_counter() - start
    peft_model.unload()
    model.eval()
    return seconds


def measure_cost(world, prompts: int, rate: float, repeats: int = 5) -> dict:
    model, tok, task, facts = world
    peer = Account.from_key("0x" + "61" * 32)
    start = time.perf_counter()
    records = peer_records(world, peer, 0, prompts)
    rollout_s = time.perf_counter() - start
    train_s = lora_train_step_seconds(world, records)
    _, signed = publish_as(Cheat.HONEST, records, context(world, peer), epoch=0)
    served = records_with_proofs(records)  # the peer's serving cost, not the validator's
    times = []
    for _ in range(repeats):  # a fresh validator each time (its caches and cost counters start empty)
        validator = Validator(private_key="0x" + "71" * 32, facts=facts, fetch=lambda s: served, rollout_rate=rate)
        start = time.perf_counter()
        assert validator.find(signed, 0) is None, "an honest receipt was flagged"
        times.append(time.perf_counter() - start)
    validate_s = statistics.median(times)
    seq_tokens = validator.cost.forward_tokens / max(validator.cost.forward_passes, 1)
    peer_tokens = len(records) * seq_tokens * (1 + 1 + 3)  # generation + log-prob pass + train fwd/bwd (~3x fwd)
    return {
        "rollouts": len(records),
        "peer_rollout_s": rollout_s,
        "peer_train_step_s": train_s,
        "peer_total_s": rollout_s + train_s,
        "validator_s": validate_s,
        "wall_ratio": validate_s / (rollout_s + train_s),
        "validator_forward_tokens": validator.cost.forward_tokens,
        "peer_forward_token_equivalents": peer_tokens,
        "token_ratio": validator.cost.forward_tokens / peer_tokens,
        "forward_passes": validator.cost.forward_passes,
    }


def context(world, account):
    model, tok, task, facts = world
    return PeerContext(account, RUN_KEY, DOMAIN, CHECKPOINT, model, tok, task, facts.reward_fn, MAX_TOKENS)


def analytic_detection(kind: str, n: int, rate: float, validators: int = 1) -> float:
    """P(caught) for one receipt of n rollouts audited by `validators` independent draws."""
    if kind != PARTIAL:
        return 1.0  # checked on every record (counts, prompts, rewards, identity) or on all-fabricated rollouts
    k = rollouts_to_check(n, rate)
    return 1 - (1 - k / n) ** validators


def cheat_receipt(world, kind: str, account, epoch: int, prompts: int):
    records = peer_records(world, account, epoch, prompts)
    ctx = context(world, account)
    if kind == PARTIAL:
        victim = (epoch * 7 + 3) % len(records)
        records = [fabricate_completion(ctx, r) if i == victim else r for i, r in enumerate(records)]
        return publish_as(Cheat.HONEST, records, ctx, epoch=epoch)
    previous = peer_records(world, account, epoch - 1, prompts) if kind == Cheat.REPLAYED_EPOCH.value else None
    return publish_as(Cheat(kind), records, ctx, epoch=epoch, previous=previous)


def empirical_detection(world, kind: str, trials: int, prompts: int, rate: float) -> dict:
    facts = world[3]
    caught1 = caught3 = 0
    for t in range(trials):
        account = Account.from_key(bytes([0x80] * 31 + [t + 1]))
        served, signed = cheat_receipt(world, kind, account, epoch=1 + t, prompts=prompts)
        fetch = lambda s, served=served: records_with_proofs(served)  # noqa: E731
        found = [
            Validator(private_key=bytes([0x90 + v] * 32), facts=facts, fetch=fetch, rollout_rate=rate).find(
                signed, signed.receipt.epoch if kind != Cheat.REPLAYED_RUN.value else 1 + t
            )
            for v in range(3)
        ]
        caught1 += found[0] is not None
        caught3 += any(f is not None for f in found)
    return {"one_validator": caught1 / trials, "three_validators": caught3 / trials}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    c = result["cost"]
    left.bar(
        ["peer rollouts", "peer train step", "validator audit"],
        [c["peer_rollout_s"], c["peer_train_step_s"], c["validator_s"]],
        color=["C0", "C0", "C1"],
    )
    left.set_ylabel("seconds per epoch (one peer)")
    left.set_title(f"validator / peer = {c['wall_ratio']:.1%} (rate {result['rate']})")
    n = c["rollouts"]
    rates = [i / 100 for i in range(1, 101)]
    for v, style in ((1, "-"), (3, "--")):
        right.plot(
            rates,
            [analytic_detection(PARTIAL, n, r, v) for r in rates],
            style,
            label=f"1 fabricated of {n}, {v} validator(s)",
        )
    right.axvline(result["rate"], color="grey", lw=0.8)
    for kind, d in result["detection"].items():
        right.scatter([result["rate"]], [d["empirical"]["one_validator"]], label=f"{kind} (empirical)", s=18)
    right.set_xlabel("rollout sampling rate")
    right.set_ylabel("P(detected) per receipt")
    right.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=DEFAULT_ROLLOUT_RATE)
    parser.add_argument("--prompts", type=int, default=4, help="prompts per receipt (x4 rollouts each)")
    parser.add_argument("--trials", type=int, default=8, help="cheating receipts per kind")
    args = parser.parse_args()
    world = build_world()
    cost = measure_cost(world, args.prompts, args.rate)
    kinds = [c.value for c in Cheat if c is not Cheat.HONEST] + [PARTIAL]
    detection = {}
    for kind in kinds:
        n = args.prompts * GROUP
        detection[kind] = {
            "analytic": {
                "one_validator": analytic_detection(kind, n, args.rate),
                "three_validators": analytic_detection(kind, n, args.rate, 3),
            },
            "empirical": empirical_detection(world, kind, args.trials, args.prompts, args.rate),
        }
    result = {"rate": args.rate, "cost": cost, "detection": detection, "trials": args.trials}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "verify_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, OUT_DIR / "verify_cost.png")
    report(result)


def report(result: dict) -> None:
    c, console = result["cost"], Console()
    console.print(
        f"rate {result['rate']}, {c['rollouts']} rollouts/receipt: peer {c['peer_total_s']:.3f}s "
        f"(rollouts {c['peer_rollout_s']:.3f}s + train step {c['peer_train_step_s']:.3f}s), "
        f"validator {c['validator_s']:.4f}s"
    )
    console.print(
        f"validator/peer wall ratio {c['wall_ratio']:.2%}   forward-token ratio {c['token_ratio']:.2%}   "
        f"(goal <= 5%: {'met' if max(c['wall_ratio'], c['token_ratio']) <= 0.05 else 'NOT met'})"
    )
    table = Table(title="P(detected) per cheating receipt")
    for col in ("cheat", "analytic 1 val", "empirical 1 val", "analytic 3 val", "empirical 3 val"):
        table.add_column(col)
    for kind, d in result["detection"].items():
        a, e = d["analytic"], d["empirical"]
        table.add_row(
            kind,
            f"{a['one_validator']:.3f}",
            f"{e['one_validator']:.3f}",
            f"{a['three_validators']:.3f}",
            f"{e['three_validators']:.3f}",
        )
    console.print(table)
    if math.isfinite(c["wall_ratio"]):
        console.print(f"wrote {OUT_DIR / 'verify_cost.json'} and {OUT_DIR / 'verify_cost.png'}")


if __name__ == "__main__":
    main()
