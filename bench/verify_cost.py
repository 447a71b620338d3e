"""Validator compute and the peer's attestation overhead vs the peers' epochs on the real paths; detection per cheat.

    python bench/verify_cost.py                       # tiny base, 1 peer, 8 prompts x 4 = 32 rollouts, rate 0.1
    python bench/verify_cost.py --peers 4 --repeats 6 --tag=-tiny-p4
    python bench/verify_cost.py --base smollm2-135m-instruct --trials 0 --repeats 3 --tag=-smollm2
    python bench/verify_cost.py --hidden 384 --layers 8 --trials 0 --tag=-384x8

Peer side (`Peer`): what `hivetune join` trains, minus the network round. The spec's pinned base
(`load_pinned_base`), LoRA (`spec.lora.peft_config()`) and GRPO config (`grpo_config_from_spec`), TRL's
GRPOTrainer with seeded generation (`SeededGenerationMixin`, as `SwarmGRPOTrainer`) on the peer's assigned
prompts (`Assignment.row` / `Assignment.seeder`). One warm-up step, then `--repeats` timed epochs of one local
step each (generation, rewards, GRPO loss, backward, optimizer step). With `--peers` > 1 every peer starts each
epoch from the same canonical state, published by the first peer as a PEFT adapter in a `CheckpointStore` (as
`EpochPublisher.publish`), as if the round had averaged them to it. The peer's attestation is `EpochAttester`
on the step's seeded samples (records, Merkle root, EIP-712 receipt, written to disk).

Validator side: `facts_for_run(spec, ...)` as `hivetune validate` builds it (PolicyPool over the store: one base
model, the epoch's canonical adapter read by CID and installed; the spec's caps, EOS ids, vocabulary, prompt
rendering, fp32 tolerances) with the epoch board's answers (canonical checkpoint, round members), the deployed
default draw rate (`DEFAULT_ROLLOUT_RATE`), receipts and records read from the peers' `RolloutDirectory`. Each
epoch one validator audits all the epoch's receipts with `Validator.find_many` (what `validate_epochs` runs:
drawn records of all receipts in shared forward passes) and, for comparison, one receipt at a time
(`Validator.find`); the adapter LRU is emptied first, so each epoch pays its checkpoint's read and install (the
base model load, once per validator process, is reported apart). Every honest receipt must be accepted.

Ratios count this process's CPU seconds (torch on one thread; `--clock wall` for wall seconds), so other jobs
on a shared machine slow neither side: validator seconds per epoch / the peers' summed step seconds (per peer
epoch audited), and attestation seconds / step seconds, with means and seeded 95% bootstrap intervals over
the epochs. Then per cheat the analytic and empirical detection probability (one validator, a quorum of 3) on
the tiny model (`--trials 0` skips it). Writes bench/results/verify_cost<tag>.json and .png.

The floor: a drawn rollout costs the validator one teacher-forced forward over prompt + completion; the peer
spends on every rollout a generation (completion tokens) and a forward + backward (~3x) over prompt +
completion. At rate 0.1 on 32 rollouts 4 are drawn (ceil), so in FLOPs the validator needs about
4/32 x 1 / (1 + 3) ~ 3% of the peer's epoch before any fixed cost; only where generation is slower per token
than a teacher-forced pass (latency-bound decoding, e.g. on an accelerator) can the share fall under 2% at
this draw. Measured numbers: README.md (bench table) and bench/results/verify_cost*.json.
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
from coordination.chain.eip712 import attest_domain  # noqa: E402
from coordination.verify.audit import rollouts_to_check  # noqa: E402
from coordination.verify.run_facts import RunFacts  # noqa: E402
from coordination.verify.validator import DEFAULT_ROLLOUT_RATE, Validator  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent / "results"
RUN, RUN_KEY, CHECKPOINT = "bafy-bench-run", b"\x0b" * 32, "bafy-bench-ck"
DOMAIN = attest_domain(chain_id=31337)
GROUP, MAX_TOKENS, TEMPERATURE = 4, 32, 0.7
CHEAPER: list = []  # the cheaper model a CHEAPER_MODEL cheat samples from (built with the world)


def _contribution() -> bytes:
    from coordination.attest.receipts import contribution_digest
    from coordination.checkpoints.addressing import block_cid

    return contribution_digest(str(block_cid(b"the peer's gradient", "raw")))


CONTRIBUTION = _contribution()  # the one contribution the bench's round holds
# what the ratios count: this process's CPU seconds (torch on one thread), so that other jobs on a shared machine
# slow neither side's figure; --clock wall uses wall-clock seconds instead
CLOCK = [time.process_time]
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


def bench_spec(base: str, prompts: int):
    """The run spec both sides are built from: the spec's base, LoRA and GRPO defaults, the bench's batch."""
    from coordination.swarm.runspec import run_spec_from_dict

    return run_spec_from_dict({
        "name": "verify-cost-bench", "model": {"base": base},
        "grpo": {"per_device_train_batch_size": prompts * GROUP, "num_generations": GROUP,
                 "max_completion_length": MAX_TOKENS, "temperature": TEMPERATURE},
    })  # fmt: skip


class Peer:
    """One peer's local steps as `hivetune join` trains them (minus the network round), step by step timed.

    The base comes from `load_pinned_base(**spec.model.pins)`, the LoRA from `spec.lora.peft_config()`, the
    GRPO config from `grpo_config_from_spec` and the trainer is TRL's GRPOTrainer with seeded generation
    (`SeededGenerationMixin`, which `SwarmGRPOTrainer` also mixes in) on the peer's assigned prompts, rows as
    `Assignment.row` builds them, seeds from `Assignment.seeder`. Every step starts from the epoch's
    canonical state (`canonical[step]`): the leader publishes its start state as a checkpoint in the store
    (as `EpochPublisher.publish` does), the other peers copy that state in, as if the round had averaged
    them to it. The step is then timed (generation, rewards, GRPO loss, backward, optimizer step)."""

    def __init__(self, spec, account, steps: int, tmp: Path, store, canonical: list, lead: bool):
        import torch
        from datasets import Dataset
        from transformers import TrainerCallback

        from coordination.swarm.peer import grpo_config_from_spec
        from coordination.swarm.swarm_trainer import Assignment
        from trainer.base_models import load_pinned_base
        from trainer.grpo import build_grpo_trainer
        from trainer.seeded_grpo import SeededGRPOTrainer
        from trainer.tasks import get_task

        model, tok = load_pinned_base(**spec.model.pins)
        self.spec, self.account, self.tokenizer, self.store = spec, account, tok, store
        self.task = get_task(spec.task.name, **spec.task.params)
        assignment = Assignment(spec.run_id, account.address, self.task, spec.task.seed, tok)
        prompts = spec.samples_per_local_step // spec.grpo.num_generations
        dataset = Dataset.from_list([assignment.row(0, slot) for slot in range(prompts)])
        config = grpo_config_from_spec(spec, output_dir=str(tmp / f"grpo-{account.address}"), report_to="none",
                                       max_steps=steps + 1, logging_steps=10**6)  # fmt: skip
        self.trainer = trainer = build_grpo_trainer(model=model, tokenizer=tok, task=self.task, dataset=dataset,
                                                    grpo_config=config, lora_config=spec.lora.peft_config(),
                                                    trainer_cls=SeededGRPOTrainer)  # fmt: skip
        trainer.rollout_seeder = assignment.seeder(lambda: 0)
        self.steps: list[dict] = []  # per timed step: seconds, seeded samples, checkpoint CID
        peer = self

        class StepTimer(TrainerCallback):
            def on_step_begin(self, args, state, control, **kwargs):
                if state.global_step == 0:
                    return  # warm-up step (allocations, first-call overheads), not timed
                step = state.global_step - 1
                if lead:
                    canonical.append(peer.publish(step))
                else:
                    peer.load_state(canonical[step]["state"])
                trainer.take_seeded_rollouts(0)
                peer._t0 = CLOCK[0]()

            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= 2:
                    seconds = CLOCK[0]() - peer._t0
                    step = state.global_step - 2
                    peer.steps.append({"seconds": seconds, "samples": trainer.take_seeded_rollouts(0),
                                       "checkpoint": canonical[step]["cid"]})  # fmt: skip

        trainer.add_callback(StepTimer())
        torch.manual_seed(0)

    def lora_state(self) -> dict:
        return {n: p.detach().clone() for n, p in self.trainer.model.named_parameters() if "lora_" in n}

    def load_state(self, state: dict) -> None:
        import torch

        params = dict(self.trainer.model.named_parameters())
        with torch.no_grad():
            for name, tensor in state.items():
                params[name].copy_(tensor)

    def publish(self, step: int) -> dict:
        """The start state of `step` saved as a PEFT adapter and added to the store: its CID is canonical."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="verify-cost-adapter-") as tmp:
            self.trainer.model.save_pretrained(tmp)
            cid = self.store.add_adapter(tmp, base_model=self.spec.model.base, base_revision=self.spec.model.revision,
                                         run_id=self.spec.run_id, step=step)  # fmt: skip
        return {"cid": cid, "state": self.lora_state()}

    def train(self) -> None:
        self.trainer.train()


def attest(peer: Peer, step: dict, root: Path):
    """`EpochAttester` on a timed step's seeded samples (records, receipt, signature, written to disk)."""
    from types import SimpleNamespace

    from coordination.attest.epoch_hook import EpochAttester
    from coordination.attest.rollout_store import RolloutDirectory
    from coordination.checkpoints.addressing import block_cid

    store = RolloutDirectory(root)
    attester = EpochAttester(account=peer.account, run_id=peer.spec.run_id, domain=DOMAIN, task=peer.task,
                             tokenizer=peer.tokenizer, store=store,
                             checkpoint_cid=lambda e: step["checkpoint"])  # fmt: skip
    contribution = str(block_cid(b"the gradient of " + peer.account.address.encode(), "raw"))
    outcome = SimpleNamespace(contribution=contribution, entered=True, start_cid=step["checkpoint"])
    start = CLOCK[0]()
    attester(SimpleNamespace(epoch=0, rollouts=[], seeded=step["samples"], outcome=outcome))
    seconds = CLOCK[0]() - start
    ((_, signed),) = attester.published
    return signed, store, seconds


def validator_facts(spec, store, checkpoint: dict, contributions: set, pool=None):
    """The facts `hivetune validate` builds (`facts_for_run`: PolicyPool over the store, the spec's tolerances,
    EOS ids, vocabulary, prompt rendering), with the epoch board's two answers: the canonical checkpoint of the
    epoch and the round's members."""
    from coordination.attest.receipts import contribution_digest
    from coordination.verify.run_facts import facts_for_run

    members = {contribution_digest(c) for c in contributions}
    reuse = {"load_policy": pool} if pool is not None else {}
    return facts_for_run(spec, domain=DOMAIN, store=store, checkpoint_of_epoch=lambda e: checkpoint["cid"],
                         entered_round=lambda e, peer, contribution: bytes(contribution) in members,
                         **reuse)  # fmt: skip


def interval(values: list[float], seed: int = 0, n: int = 2000) -> list[float]:
    """95% bootstrap interval of the mean (percentile method, seeded)."""
    import random

    if len(values) < 2:
        return [values[0], values[0]] if values else [math.nan, math.nan]
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(n))
    return [means[int(0.025 * n)], means[int(0.975 * n) - 1]]


def measure_cost(spec, peers: int, repeats: int, rate: float) -> dict:
    """`repeats` epochs of `peers` peers; per epoch one validator audits every receipt (batched, and one by one).

    Validator ratio = validator seconds for the epoch's receipts / the peers' summed step seconds (per peer epoch
    audited); attestation ratio = a peer's `EpochAttester` seconds / its step seconds. Both sides run in this
    process, interleaved epoch by epoch, so both see the same load on a shared machine."""
    import tempfile

    from coordination.checkpoints.store import CheckpointStore
    from coordination.verify.validator import Validator

    with tempfile.TemporaryDirectory(prefix="verify-cost-") as tmp:
        tmp = Path(tmp)
        store, canonical = CheckpointStore(tmp / "checkpoints"), []
        accounts = [Account.from_key(bytes([0x61] * 31 + [i + 1])) for i in range(peers)]
        group = [Peer(spec, a, repeats, tmp, store, canonical, lead=i == 0) for i, a in enumerate(accounts)]
        for peer in group:  # the leader first: it publishes each step's canonical start state
            peer.train()
        pool = None  # one validator process: its PolicyPool (base model + adapter LRU) lives across epochs
        rows = []
        for r in range(repeats):
            attested = [attest(p, p.steps[r], tmp / "rollouts") for p in group]
            receipts = [signed for signed, _, _ in attested]
            contributions = {str(_contribution_of(p)) for p in group}
            facts = validator_facts(spec, store, canonical[r], contributions, pool)
            pool = facts.load_policy
            if r == 0:
                start = CLOCK[0]()
                pool(canonical[r]["cid"])  # the base model is loaded once per validator process: not per epoch
                base_load_s = CLOCK[0]() - start
            fetch = attested[0][1].fetch
            v = Validator(private_key="0x" + "71" * 32, facts=facts, fetch=fetch, rollout_rate=rate)
            forget_adapters(pool)  # the epoch's checkpoint is new to the validator: its adapter read + swap is paid
            start = CLOCK[0]()
            findings = v.find_many(receipts, 0)
            batched_s = CLOCK[0]() - start
            assert findings == [None] * peers, f"an honest receipt was flagged: {findings}"
            one = Validator(private_key="0x" + "71" * 32, facts=facts, fetch=fetch, rollout_rate=rate)
            forget_adapters(pool)
            start = CLOCK[0]()
            singles = [one.find(signed, 0) for signed in receipts]
            single_s = CLOCK[0]() - start
            assert singles == [None] * peers, f"an honest receipt was flagged one by one: {singles}"
            peer_s = sum(p.steps[r]["seconds"] for p in group)
            attest_ratio = statistics.fmean(a[2] / p.steps[r]["seconds"] for a, p in zip(attested, group, strict=True))
            rows.append({
                "peer_step_s": [p.steps[r]["seconds"] for p in group],
                "attest_s": [a[2] for a in attested],
                "validator_batched_s": batched_s, "validator_one_by_one_s": single_s,
                "validator_ratio": batched_s / peer_s, "validator_ratio_one_by_one": single_s / peer_s,
                "attest_ratio": attest_ratio,
                "forward_passes": v.cost.forward_passes, "forward_tokens": v.cost.forward_tokens,
                "records_checked_cheaply": v.cost.records_checked_cheaply,
            })  # fmt: skip
    summary = {}
    for key in ("validator_ratio", "validator_ratio_one_by_one", "attest_ratio"):
        values = [row[key] for row in rows]
        summary[key] = {"mean": statistics.fmean(values), "median": statistics.median(values),
                        "ci95": interval(values), "n": len(values)}  # fmt: skip
    return {
        "peers": peers, "repeats": repeats, "rollouts_per_receipt": spec.samples_per_local_step,
        "base_model_load_s": base_load_s, "epochs": rows, **summary,
    }  # fmt: skip


def forget_adapters(pool) -> None:
    """Empty the pool's adapter LRU so the next audit reads and installs the epoch's adapter, as a new epoch does."""
    pool._adapters.clear()
    pool._loaded = None


def _contribution_of(peer: Peer):
    from coordination.checkpoints.addressing import block_cid

    return block_cid(b"the gradient of " + peer.account.address.encode(), "raw")


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
    labels = ["validator (batched)", "validator (one by one)", "peer attestation"]
    keys = ["validator_ratio", "validator_ratio_one_by_one", "attest_ratio"]
    means = [100 * c[k]["mean"] for k in keys]
    errs = [
        [100 * (c[k]["mean"] - c[k]["ci95"][0]) for k in keys],
        [100 * (c[k]["ci95"][1] - c[k]["mean"]) for k in keys],
    ]
    left.bar(labels, means, yerr=errs, color=["C1", "C3", "C2"], capsize=4)
    for k, x in zip(keys, range(3), strict=True):
        left.scatter([x] * c[k]["n"], [100 * e[k] for e in c["epochs"]], color="k", s=8, zorder=3)
    left.axhline(2, color="C1", ls="--", lw=0.8, label="validator goal 2%")
    left.axhline(3, color="C2", ls=":", lw=0.8, label="attestation goal 3%")
    left.set_ylabel("% of the peers' epoch compute")
    title = f"{result['model']}, {c['peers']} peer(s), {c['rollouts_per_receipt']} rollouts, rate {result['rate']}"
    left.set_title(title, fontsize=9)
    left.legend(fontsize=7)
    left.tick_params(axis="x", labelsize=7)
    n = c["rollouts_per_receipt"]
    rates = [i / 100 for i in range(1, 101)]
    for v, style in ((1, "-"), (3, "--")):
        right.plot(rates, [analytic_detection(PARTIAL, n, r, v) for r in rates], style,
                   label=f"1 fabricated of {n}, {v} validator(s)")  # fmt: skip
    right.axvline(result["rate"], color="grey", lw=0.8)
    for kind, d in result.get("detection", {}).items():
        right.scatter([result["rate"]], [d["empirical"]["one_validator"]], label=f"{kind} (empirical)", s=18)
    right.set_xlabel("rollout sampling rate")
    right.set_ylabel("P(detected) per receipt")
    right.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def bench_base(args, tmp: Path) -> str:
    """The base model: the spec's default ("tiny"), a built-in (e.g. smollm2-135m-instruct), or a wider/deeper
    tiny model saved to a directory (--hidden/--layers) that both sides load from disk."""
    if args.hidden is None and args.layers is None:
        return args.base
    from trainer.models import create_tiny_model

    size = {k: v for k, v in (("hidden_size", args.hidden), ("num_hidden_layers", args.layers)) if v}
    return str(create_tiny_model(tmp / "base", seed=0, **size))


def main() -> None:
    import tempfile

    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=DEFAULT_ROLLOUT_RATE)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per receipt (x4 rollouts each)")
    parser.add_argument("--peers", type=int, default=1, help="peers per epoch (one validator audits them all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs (after one warm-up step)")
    parser.add_argument("--trials", type=int, default=4, help="cheating receipts per kind (0: skip detection)")
    parser.add_argument("--base", default="tiny", help="the run's base model (spec model.base)")
    parser.add_argument("--hidden", type=int, default=None, help="a tiny model of this width instead of --base")
    parser.add_argument("--layers", type=int, default=None, help="a tiny model of this depth instead of --base")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (both sides)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="CPU seconds or wall seconds")
    parser.add_argument("--tag", default="", help="suffix of the result files (bench/results/verify_cost<tag>.*)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    with tempfile.TemporaryDirectory(prefix="verify-cost-base-") as tmp:
        base = bench_base(args, Path(tmp))
        spec = bench_spec(base, args.prompts)
        cost = measure_cost(spec, args.peers, args.repeats, args.rate)
        from transformers import AutoConfig

        from trainer.models import resolve_model_path

        config = AutoConfig.from_pretrained(resolve_model_path(base))
    model = args.base if args.hidden is None and args.layers is None else "tiny"
    model += f" {config.hidden_size}x{config.num_hidden_layers}"
    result = {"rate": args.rate, "model": model, "threads": args.threads, "clock": args.clock, "cost": cost,
              "trials": args.trials,
              "seeds": {"torch": 0, "grpo": spec.grpo.seed, "task": spec.task.seed, "bootstrap": 0},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
    if args.trials:
        world = build_world()
        detection = {}
        for kind in [c.value for c in Cheat if c is not Cheat.HONEST] + [PARTIAL]:
            n = args.prompts * GROUP
            detection[kind] = {
                "analytic": {
                    "one_validator": analytic_detection(kind, n, args.rate),
                    "three_validators": analytic_detection(kind, n, args.rate, 3),
                },
                "empirical": empirical_detection(world, kind, args.trials, args.prompts, args.rate),
            }
        result["detection"] = detection
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stem = OUT_DIR / f"verify_cost{args.tag}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, stem.with_suffix(".png"))
    report(result, stem)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _ci(d: dict) -> str:
    return f"{d['mean']:.2%} [95% CI {d['ci95'][0]:.2%}, {d['ci95'][1]:.2%}] (median {d['median']:.2%}, n={d['n']})"


def report(result: dict, stem: Path) -> None:
    c, console = result["cost"], Console()
    steps = [s for e in c["epochs"] for s in e["peer_step_s"]]
    console.print(
        f"{result['model']}, {c['peers']} peer(s) x {c['repeats']} epochs, "
        f"{c['rollouts_per_receipt']} rollouts/receipt, "
        f"rate {result['rate']}: peer step median {statistics.median(steps):.3f}s, validator per epoch median "
        f"{statistics.median(e['validator_batched_s'] for e in c['epochs']):.4f}s "
        f"({c['epochs'][0]['forward_passes']} rows recomputed), base model load {c['base_model_load_s']:.2f}s (once)"
    )
    v, one, a = c["validator_ratio"], c["validator_ratio_one_by_one"], c["attest_ratio"]
    console.print(f"validator / peer epoch compute: {_ci(v)} (goal <= 2%: {_met(v['mean'] <= 0.02)})")
    console.print(f"  same checks one receipt at a time: {_ci(one)}")
    console.print(f"attestation / peer epoch: {_ci(a)} (goal <= 3%: {_met(a['mean'] <= 0.03)})")
    if "detection" in result:
        table = Table(title="P(detected) per cheating receipt")
        for col in ("cheat", "analytic 1 val", "empirical 1 val", "analytic 3 val", "empirical 3 val"):
            table.add_column(col)
        for kind, d in result["detection"].items():
            an, e = d["analytic"], d["empirical"]
            table.add_row(kind, f"{an['one_validator']:.3f}", f"{e['one_validator']:.3f}",
                          f"{an['three_validators']:.3f}", f"{e['three_validators']:.3f}")  # fmt: skip
        console.print(table)
    console.print(f"wrote {stem.with_suffix('.json')} and {stem.with_suffix('.png')}")


if __name__ == "__main__":
    main()
