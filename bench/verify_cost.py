"""Validator compute and the peer's attestation overhead vs one epoch on the real peer path; detection per cheat.

    python bench/verify_cost.py                    # default rate 0.1, 8 prompts x 4 = 32 rollouts, 4 trials per cheat
    python bench/verify_cost.py --rate 0.05 --trials 8 --prompts 8

The peer epoch is the real training path: TRL's GRPOTrainer with seeded generation
(`trainer.seeded_grpo.SeededGRPOTrainer`, LoRA, the run's temperature), one optimizer step over the epoch's
assignment (generation + rewards + GRPO loss + backward + step), timed on the second step (warm); only the
swarm's averaging round is left out, so the ratios are upper bounds. The peer's attestation is
`EpochAttester` on that step's seeded samples (records, Merkle root, EIP-712 receipt, written to disk).
One validator audits the receipt from disk with the deployed checks at `--rate` (cheap checks on every record,
one forward pass per drawn rollout under the epoch's checkpoint). Prints validator/peer (goal <= 2%) and
attestation/peer (goal <= 3%) wall ratios, then per cheat the analytic and empirical detection probability
(one validator, a quorum of 3). Writes outputs/bench/verify_cost.json and .png.

Measured (2026-12-02, shared 2-core CPU, rate 0.1, 32 rollouts x 32 tokens, 4 drawn): tiny 128x4: validator 6.6%,
attestation 2.3% of the epoch; 384x8: validator 3.4%, attestation 1.0%. The validator's share falls with model size
(its fixed costs: signatures, Merkle root, cheap checks on every record) towards the forward-pass floor
4/32 x 1 forward / (generation + forward + backward) ~ 3% at this draw on CPU; it is not yet <= 2% here.
"""

from __future__ import annotations

import argparse
import dataclasses
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
GROUP, MAX_TOKENS, TEMPERATURE = 4, 32, 0.7
CHEAPER: list = []  # the cheaper model a CHEAPER_MODEL cheat samples from (built with the world)


def _contribution() -> bytes:
    from coordination.attest.receipts import contribution_digest
    from coordination.checkpoints.addressing import block_cid

    return contribution_digest(str(block_cid(b"the peer's gradient", "raw")))


CONTRIBUTION = _contribution()  # the one contribution the bench's round holds
PARTIAL = "fabricated_one_rollout"  # fabricates a single completion of the receipt: the hardest case


def build_world(hidden: int | None = None, layers: int | None = None):
    import torch
    from transformers import AutoModelForCausalLM

    from trainer.models import build_char_tokenizer, tiny_config
    from trainer.tasks import get_task

    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    torch.manual_seed(0)
    size = {k: v for k, v in (("hidden_size", hidden), ("num_hidden_layers", layers)) if v}
    model = AutoModelForCausalLM.from_config(tiny_config(tok, **size)).eval()  # default: the demo's tiny Qwen2
    torch.manual_seed(1)
    CHEAPER.append(AutoModelForCausalLM.from_config(tiny_config(tok, hidden_size=32, num_hidden_layers=1)).eval())
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
        temperature=TEMPERATURE,
        load_policy=lambda cid: (model, tok),
        checkpoint_of_epoch=lambda epoch: CHECKPOINT,
        entered_round=lambda epoch, peer, contribution: contribution == CONTRIBUTION,
        eos_token_ids=(tok.eos_token_id,),
        vocab_size=model.config.vocab_size,
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
        temperature=TEMPERATURE,
    )
    return generate_rollouts(model, tok, task, plan, reward_fn=facts.reward_fn)


def peer_epoch(world, account, prompts: int, tmp: Path) -> dict:
    """Two GRPO steps of the real peer path; the second (warm) is timed; its seeded samples and start state kept."""
    import copy

    import torch
    from peft import LoraConfig
    from transformers import TrainerCallback

    from coordination.attest.assignment import assigned_indices
    from coordination.attest.seeded_sampling import rollout_seed
    from trainer.grpo import GRPOConfig, build_grpo_trainer, prompt_dataset
    from trainer.seeded_grpo import SeededGRPOTrainer

    model, tok, task, facts = world
    indices = assigned_indices(RUN, 0, account.address, prompts)
    dataset = prompt_dataset(task, 0, indices).add_column("slot", list(range(prompts)))
    config = GRPOConfig(
        output_dir=str(tmp / "grpo"), max_steps=2, per_device_train_batch_size=prompts * GROUP,
        num_generations=GROUP, max_completion_length=MAX_TOKENS, temperature=facts.temperature, learning_rate=1e-3,
        beta=0.0, report_to="none", use_cpu=True, bf16=False, save_strategy="no", seed=0, disable_tqdm=True,
        logging_steps=1,
    )  # fmt: skip
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = build_grpo_trainer(model=copy.deepcopy(model), tokenizer=tok, task=task, dataset=dataset,
                                 grpo_config=config, lora_config=lora, trainer_cls=SeededGRPOTrainer)  # fmt: skip
    trainer.rollout_seeder = lambda row, g: rollout_seed(RUN, 0, account.address, int(row["slot"]), g)
    timing = {}

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 1:
                timing["start_model"] = copy.deepcopy(trainer.model).eval()
                trainer._seeded_done = []
                timing["t0"] = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                timing["step_s"] = time.perf_counter() - timing["t0"]

    trainer.add_callback(StepTimer())
    torch.manual_seed(0)
    trainer.train()
    return {"samples": trainer.take_seeded_rollouts(0), **timing}


def measure_cost(world, prompts: int, rate: float, repeats: int = 5) -> dict:
    import tempfile
    from types import SimpleNamespace

    from coordination.attest.epoch_hook import EpochAttester
    from coordination.attest.rollout_store import RolloutDirectory
    from coordination.checkpoints.addressing import block_cid

    model, tok, task, facts = world
    peer = Account.from_key("0x" + "61" * 32)
    with tempfile.TemporaryDirectory(prefix="verify-cost-") as tmp:
        epoch = peer_epoch(world, peer, prompts, Path(tmp))
        store = RolloutDirectory(Path(tmp) / "rollouts")
        attester = EpochAttester(account=peer, run_id=RUN, run_key=RUN_KEY, domain=DOMAIN, task=task, tokenizer=tok,
                                 store=store, checkpoint_cid=lambda e: CHECKPOINT)  # fmt: skip
        outcome = SimpleNamespace(contribution=str(block_cid(b"the peer's gradient", "raw")), entered=True)
        start = time.perf_counter()
        attester(SimpleNamespace(epoch=0, rollouts=[], seeded=epoch["samples"], outcome=outcome))
        attest_s = time.perf_counter() - start
        ((_, signed),) = attester.published
        audited = dataclasses.replace(facts, load_policy=lambda cid: (epoch["start_model"], tok),
                                      prompts_per_epoch=prompts)  # fmt: skip
        times = []
        for _ in range(repeats):  # a fresh validator each time (its cost counters start empty)
            validator = Validator(private_key="0x" + "71" * 32, facts=audited, fetch=store.fetch, rollout_rate=rate)
            start = time.perf_counter()
            finding = validator.find(signed, 0)
            times.append(time.perf_counter() - start)
            assert finding is None, f"an honest receipt was flagged: {finding}"
    validate_s, step_s = statistics.median(times), epoch["step_s"]
    return {
        "rollouts": len(epoch["samples"]),
        "peer_epoch_s": step_s,
        "attest_s": attest_s,
        "validator_s": validate_s,
        "validator_ratio": validate_s / step_s,
        "attest_ratio": attest_s / step_s,
        "validator_forward_tokens": validator.cost.forward_tokens,
        "forward_passes": validator.cost.forward_passes,
    }


def context(world, account):
    model, tok, task, facts = world
    return PeerContext(account, RUN_KEY, DOMAIN, CHECKPOINT, model, tok, task, facts.reward_fn, MAX_TOKENS,
                       contribution=CONTRIBUTION, run_id=RUN, temperature=TEMPERATURE,
                       other_model=CHEAPER[0] if CHEAPER else None)  # fmt: skip


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
        ["peer epoch (GRPO step)", "peer attestation", "validator audit"],
        [c["peer_epoch_s"], c["attest_s"], c["validator_s"]],
        color=["C0", "C2", "C1"],
    )
    left.set_ylabel("seconds per epoch (one peer)")
    left.set_title(f"validator {c['validator_ratio']:.1%}, attestation {c['attest_ratio']:.1%} of the epoch")
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
    parser.add_argument("--prompts", type=int, default=8, help="prompts per receipt (x4 rollouts each)")
    parser.add_argument("--trials", type=int, default=4, help="cheating receipts per kind")
    parser.add_argument("--hidden", type=int, default=None, help="model width (default: the tiny model's)")
    parser.add_argument("--layers", type=int, default=None, help="model depth (default: the tiny model's)")
    args = parser.parse_args()
    world = build_world(args.hidden, args.layers)
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
    size = {"hidden": world[0].config.hidden_size, "layers": world[0].config.num_hidden_layers}
    result = {"rate": args.rate, "cost": cost, "detection": detection, "trials": args.trials, "model": size}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "verify_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, OUT_DIR / "verify_cost.png")
    report(result)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(result: dict) -> None:
    c, console = result["cost"], Console()
    console.print(
        f"rate {result['rate']}, {c['rollouts']} rollouts/receipt: peer epoch {c['peer_epoch_s']:.3f}s, "
        f"attestation {c['attest_s']:.4f}s, validator {c['validator_s']:.4f}s ({c['forward_passes']} forward passes)"
    )
    console.print(
        f"validator/peer {c['validator_ratio']:.2%} (goal <= 2%: {_met(c['validator_ratio'] <= 0.02)})   "
        f"attestation/peer {c['attest_ratio']:.2%} (goal <= 3%: {_met(c['attest_ratio'] <= 0.03)})"
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
    if math.isfinite(c["validator_ratio"]):
        console.print(f"wrote {OUT_DIR / 'verify_cost.json'} and {OUT_DIR / 'verify_cost.png'}")


if __name__ == "__main__":
    main()
