"""`make demo`: a whole public run on one machine, every role its own process.

    python -m recipes.public_run                         # what `make demo` runs (~10 min on 2 CPU cores)
    python -m recipes.public_run --config recipes/configs/public_run_ci.yaml   # the short CI version

1. **Warm start.** The run's base model: the tiny model after SFT on (deliberately flawed) teacher
   traces, so GRPO has something to fix. Held-out accuracy *before* is measured here.
2. **Chain.** anvil (`@foundry-rs/anvil`) with every contract deployed; two validators stake,
   register and are activated after the activation delay, every peer posts its bond, the operator
   stakes (voting power) and funds the reward pool.
3. **Swarm.** `hivetune bootstrap`, then `hivetune join --key-file ...` for each training peer: they
   average LoRA gradients over hivemind, work on their assigned prompts, publish a checkpoint per
   epoch and sign a work receipt per epoch.
4. **Attestation and rewards.** Each validator `hivetune validate`s every receipt by recomputation
   (records fetched over libp2p), `hivetune settle-sign`s the contribution table; the aggregator
   `hivetune settle`s the period on chain; after the challenge window each peer `hivetune claim`s.
5. **Promotion.** The trained checkpoint is nominated by its weights hash and its eval seed fixed a
   block later (`hivetune fix-seed`), each validator runs the transparent eval and signs it
   (`hivetune eval-attest`), the operator `hivetune propose`s, stakers `hivetune vote`, and
   `hivetune promote` queues it in the timelock and, after the delay, executes it.
6. **A new peer** `hivetune join`s from the promoted checkpoint, fetched by CID and verified.
7. **Summary.** A table (accuracy before/after, rewards per peer, promoted CID, tx hashes) and a
   PNG of reward and accuracy over epochs under `output_dir`.

Every process started here is stopped at the end, also on Ctrl-C or failure; a rerun starts clean.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_MODE", "offline")

CONFIG = Path(__file__).parent / "configs" / "public_run.yaml"
LOOPBACK = "/ip4/127.0.0.1/tcp/0"
TOKEN = 10**18


@dataclass
class PublicRunConfig:
    """The demo's knobs; `run` is merged into the generated run.yaml (grpo, lora, averaging...)."""

    output_dir: str = "outputs/demo"
    model: str = "tiny"  # the run's base: 'tiny', 'smollm2-135m-instruct' (built-ins) or a local model dir
    peers: int = 2
    epochs: int = 12
    task: str = "arithmetic"
    task_params: dict = field(default_factory=lambda: {"digits": 2})
    eval_n: int = 200
    eval_seed: int = 12_345
    eval_every: int = 4  # evaluate the per-epoch checkpoints every N epochs for the plot
    attest_eval_n: int = 64  # samples of the validators' transparent eval
    warm_start: dict | None = field(default_factory=dict)  # ensure_warm_start settings; None: the base as it is
    eval_max_new_tokens: int | None = None  # held-out eval budget (None: trainer.prompts.completion_token_budget)
    torch_threads: int = 0  # intra-op threads of every process (0: torch's default; 1 is best on a busy 2-core box)
    run: dict = field(default_factory=dict)
    reward_tokens: int = 1_000
    rollout_rate: float = 0.1
    peer_timeout_s: float = 900.0

    @classmethod
    def load(cls, path: str | Path, **overrides) -> PublicRunConfig:
        import yaml

        raw = yaml.safe_load(Path(path).read_text()) or {}
        known = set(cls.__dataclass_fields__)
        if set(raw) - known:
            raise ValueError(f"{path}: unknown key(s) {sorted(set(raw) - known)}: known keys are {sorted(known)}")
        return cls(**{**raw, **{k: v for k, v in overrides.items() if v is not None}})

    def __post_init__(self):
        if not isinstance(self.run.get("model", {}), dict) or "base" in self.run.get("model", {}):
            raise ValueError(
                f"run.model={self.run.get('model')!r}: set the base with the top-level `model` key; "
                "run.model may only add pins (base_cid, revision, dtype, attn_implementation)"
            )

    def run_section(self, base: str, pins: dict) -> dict:
        """The run spec from this config: `model` (base, its pins, then `run.model`), `task`, the rest of `run`."""
        return {
            "model": {"base": base, **pins, **self.run.get("model", {})},
            "task": {"name": self.task, "seed": 0, "params": self.task_params},
            **{k: v for k, v in self.run.items() if k != "model"},
        }


class Processes:
    """Every process this demo starts, each in its own session, all stopped by `stop_all` (by pid group)."""

    def __init__(self, logs: Path):
        self.logs, self.running, self.pids = logs, {}, []
        logs.mkdir(parents=True, exist_ok=True)

    def command(self, *args) -> list[str]:
        return [sys.executable, "-m", "coordination.cli.app", *map(str, args)]

    def start(self, name: str, *args, env: dict | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed in stop_all
        proc = subprocess.Popen(
            self.command(*args),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        self.running[name] = (proc, log)
        self.pids.append(proc.pid)
        return proc

    def run(self, name: str, *args, env: dict | None = None, timeout: float = 600.0) -> str:
        """Run a one-shot command; its stdout, or RuntimeError with the end of its log."""
        return self.run_parallel([(name, args, env)], timeout=timeout)[0]

    def run_parallel(self, jobs: list[tuple], *, timeout: float = 600.0) -> list[str]:
        """Run one-shot commands `(name, args, env)` side by side (e.g. one per validator); their stdouts."""
        started = []
        for name, args, env in jobs:
            log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed below
            env = {**os.environ, **(env or {})}
            proc = subprocess.Popen(
                self.command(*args), stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True, env=env
            )
            self.running[name] = (proc, log)
            started.append((name, args, proc, log))
        outputs = []
        for name, args, proc, log in started:
            try:
                stdout, _ = proc.communicate(timeout=timeout)
            finally:
                _stop_group(proc)  # no-op when it exited; kills it on a timeout or Ctrl-C
                log.close()
                self.running.pop(name, None)
            if proc.returncode != 0:
                tail = (self.logs / f"{name}.log").read_text().strip().splitlines()[-5:]
                raise RuntimeError(f"`hivetune {args[0]}` ({name}) failed: " + " | ".join(tail))
            outputs.append(stdout)
        return outputs

    def wait_output(self, name: str, predicate, *, timeout: float) -> str:
        """The first line of `name`'s log that satisfies `predicate`; RuntimeError if it dies or times out."""
        proc, _ = self.running[name]
        deadline, path = time.monotonic() + timeout, self.logs / f"{name}.log"
        while time.monotonic() < deadline:
            for line in path.read_text().splitlines():
                if predicate(line):
                    return line
            if proc.poll() is not None:
                tail = path.read_text().strip().splitlines()[-8:]
                raise RuntimeError(f"{name} exited with {proc.returncode}: " + " | ".join(tail))
            time.sleep(0.5)
        raise RuntimeError(f"{name} gave no expected output within {timeout:.0f} s; see {path}")

    def stop_all(self) -> None:
        for proc, log in reversed(list(self.running.values())):
            _stop_group(proc)
            log.close()
        self.running.clear()


def _stop_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def _raise_interrupt(*_) -> None:
    raise KeyboardInterrupt


def _json_line(line: str) -> bool:
    return line.startswith("{") and line.rstrip().endswith("}")


@dataclass
class Roles:
    operator: object
    validators: list
    peers: list
    newcomer: object


class PublicRun:
    """One demo run; `main` drives its stages in order and always cleans up."""

    def __init__(self, cfg: PublicRunConfig, console):
        self.cfg, self.console = cfg, console
        self.out = Path(cfg.output_dir)
        self.procs = Processes(self.out / "logs")
        self.net = None
        self.facts: dict = {"tx": {}}

    # -- 1. warm start ---------------------------------------------------------------------------
    def warm_start(self) -> str:
        """The run's base (the warm start's directory, or `model` itself without one); measures accuracy before."""
        from trainer.base_models import load_pinned_base
        from trainer.eval import evaluate
        from trainer.models import TINY_ALIAS, ensure_tiny_model, hivetune_home
        from trainer.tasks import get_task

        cfg = self.cfg
        base = str(ensure_tiny_model(seed=0)) if cfg.model == TINY_ALIAS else cfg.model
        if cfg.warm_start is not None:
            from trainer.sft import ensure_warm_start

            cache = "warm_start" if cfg.model == TINY_ALIAS else f"warm_start-{Path(cfg.model).name}"
            base = str(
                ensure_warm_start(
                    cfg.task, hivetune_home() / "demo" / cache, task_params=cfg.task_params, model=base,
                    **cfg.warm_start,
                )
            )  # fmt: skip
        self.base_pins = base_model_pins(base, given=cfg.run.get("model", {}))
        pins = {**self.base_pins, **cfg.run.get("model", {})}
        model, tokenizer = load_pinned_base(
            base, revision=pins.get("revision"), expected_cid=pins.get("base_cid"), dtype=pins.get("dtype")
        )  # a config pin that the local base does not match fails here, before any process starts
        task = get_task(cfg.task, **cfg.task_params)
        budget = cfg.eval_max_new_tokens
        before = evaluate(model, tokenizer, task, n=cfg.eval_n, seed=cfg.eval_seed, max_new_tokens=budget)
        del model  # the peers need the memory
        self.facts["accuracy_before"] = before["accuracy"]
        self.facts["start"] = "warm start" if cfg.warm_start is not None else f"base {cfg.model}"
        return base

    # -- 2. chain --------------------------------------------------------------------------------
    def start_chain(self) -> Roles:
        from coordination.chain.devnet import DEVNET_PARAMS, Devnet

        # the devnet's settings, with a shorter vote and window (time is moved on by the demo anyway)
        params = dataclasses.replace(DEVNET_PARAMS, challenge_window=60, voting_period=60, validator_quorum_bps=6_000)
        n = 1 + 2 + self.cfg.peers + 1
        self.net = Devnet.start(accounts=n, params=params, deployment_path=self.out / "deployment.json")
        accounts = self.net.accounts
        roles = Roles(accounts[0], accounts[1:3], accounts[3 : 3 + self.cfg.peers], accounts[3 + self.cfg.peers])
        c = self.net.deployment.clients(self.net.w3)
        for v in roles.validators:
            c.token.approve(c.staking.address, 1_000 * TOKEN, sender=v)
            c.staking.stake(1_000 * TOKEN, sender=v)
            c.staking.register_validator(sender=v)
        for peer in [*roles.peers, roles.newcomer]:  # a peer is paid only if bonded at the period's snapshot
            c.token.approve(c.staking.address, params.min_peer_bond, sender=peer)
            c.staking.stake(params.min_peer_bond, sender=peer)
        from coordination.chain.sandbox import activate_validators

        activate_validators(self.net.w3, c.staking, [v.address for v in roles.validators], sender=roles.operator)
        c.token.approve(c.staking.address, 500 * TOKEN, sender=roles.operator)
        c.staking.stake(500 * TOKEN, sender=roles.operator)
        reward = self.cfg.reward_tokens * TOKEN
        c.token.approve(c.ledger.address, reward, sender=roles.operator)
        c.ledger.fund(reward, sender=roles.operator)
        self.clients = c
        from coordination.chain.keys import write_key_file

        for account in accounts:  # children get --key-file PATH (mode 0600), never a key on argv (ps shows argv)
            write_key_file(self.key_file(account), account.key)
        return roles

    @property
    def step_timeout_s(self) -> float:
        """How long one validator step (validate, eval-attest) may take: a real model needs longer than the tiny."""
        return max(600.0, self.cfg.peer_timeout_s)

    def key_file(self, account) -> Path:
        return self.out / "keys" / f"{account.address}.key"

    # -- 3. swarm --------------------------------------------------------------------------------
    def write_run_spec(self, base: str) -> Path:
        import yaml

        cfg = self.cfg
        spec = {
            "name": "hivetune-demo",
            **cfg.run_section(base, self.base_pins),
            "chain": {
                "rpc_url": self.net.rpc_url,
                "chain_id": self.net.deployment.chain_id,
                "deployment_file": str((self.out / "deployment.json").resolve()),
            },
        }
        path = self.out / "run.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        from coordination.swarm.runspec import load_run_spec

        self.spec = load_run_spec(path)
        return path

    def bootstrap(self, run: Path) -> str:
        self.procs.start("bootstrap", "bootstrap", "--run", run, "--host-maddr", LOOPBACK)
        return self.procs.wait_output("bootstrap", lambda s: s.startswith("/ip4/127.0.0.1/"), timeout=120).strip()

    def join_args(self, run: Path, maddr: str, account, name: str, max_epochs: int) -> list:
        return [
            "join",
            "--run",
            run,
            "--initial-peers",
            maddr,
            "--host-maddr",
            LOOPBACK,
            "--key-file",
            self.key_file(account),
            "--deployment",
            self.out / "deployment.json",
            "--rpc",
            self.net.rpc_url,
            "--from",
            "promoted",
            "--store",
            self.out / name / "store",
            "--rollouts-dir",
            self.out / name / "rollouts",
            "--output-dir",
            self.out / name,
            "--max-epochs",
            max_epochs,
            "--report-to",
            "none",
            "--serve",
            "--json",
        ]

    def train(self, run: Path, maddr: str, roles: Roles, progress) -> list[dict]:
        names = [f"peer{i}" for i in range(len(roles.peers))]
        for name, account in zip(names, roles.peers, strict=True):
            self.procs.start(name, *self.join_args(run, maddr, account, name, self.cfg.epochs))
        bar = progress.add_task("collaborative GRPO (epochs)", total=self.cfg.epochs)
        deadline = time.monotonic() + self.cfg.peer_timeout_s
        results = {}
        while len(results) < len(names):
            for name in names:
                if name in results:
                    continue
                line = self._result_line(name)
                if line is not None:
                    results[name] = json.loads(line)
            progress.update(bar, completed=self._epochs_done(names))
            if time.monotonic() > deadline:
                raise RuntimeError(f"peers did not finish {self.cfg.epochs} epochs in {self.cfg.peer_timeout_s:.0f} s")
            time.sleep(1.0)
        progress.update(bar, completed=self.cfg.epochs)
        return [results[n] for n in names]

    def _result_line(self, name: str) -> str | None:
        proc, _ = self.procs.running[name]
        lines = [s for s in (self.procs.logs / f"{name}.log").read_text().splitlines() if _json_line(s)]
        results = [s for s in lines if '"final_checkpoint"' in s]
        if results:
            return results[-1]
        if proc.poll() is not None:
            tail = (self.procs.logs / f"{name}.log").read_text().strip().splitlines()[-8:]
            raise RuntimeError(f"{name} exited with {proc.returncode}: " + " | ".join(tail))
        return None

    def _epochs_done(self, names: list[str]) -> int:
        done = []
        for name in names:
            path = self.out / name / "progress.json"
            try:
                done.append(len(json.loads(path.read_text())["epochs"]))
            except (OSError, ValueError, KeyError):
                done.append(0)
        return min(done) if done else 0

    # -- 4. attestation and rewards --------------------------------------------------------------
    def settle(self, run: Path, maddr: str, roles: Roles) -> dict:
        from coordination.chain.clock import advance_time, mine_now

        epochs = [a for e in range(self.cfg.epochs) for a in ("--epoch", e)]
        deployment = ["--deployment", self.out / "deployment.json"]
        reports = [self.out / "validators" / f"verdicts-{i}.json" for i in range(len(roles.validators))]
        validate = ["validate", "--run", run, *epochs, "--initial-peers", maddr, *deployment]
        self.procs.run_parallel(
            [
                (
                    f"validate-{i}",
                    [
                        *validate,
                        "--key-file",
                        self.key_file(v),
                        "--out",
                        reports[i],
                        "--rollout-rate",
                        self.cfg.rollout_rate,
                    ],
                    {"HIVETUNE_STORE": str(self.out / f"validator{i}" / "store")},
                )
                for i, v in enumerate(roles.validators)
            ],
            timeout=self.step_timeout_s,
        )  # validators work side by side, each with its own block store (checkpoints fetched over libp2p)
        docs = [self.out / "validators" / f"period-{i}.json" for i in range(len(roles.validators))]
        sign = ["settle-sign", "--run", run, "--period", 0, "--reward", self.cfg.reward_tokens * TOKEN, *deployment]
        # one epoch range and one stake snapshot (a past timestamp) that every validator of the period signs; taken
        # from a block mined now: anvil's latest block dates from the last transaction, before training began
        snapshot = mine_now(self.net.w3) - 1
        sign += ["--first-epoch", 0, "--last-epoch", self.cfg.epochs - 1, "--snapshot", snapshot]
        sign += sum((["--verdicts", r] for r in reports), [])
        self.procs.run_parallel(
            [
                (f"settle-sign-{i}", [*sign, "--key-file", self.key_file(v), "--out", docs[i]], None)
                for i, v in enumerate(roles.validators)
            ]
        )
        settled = json.loads(
            self.procs.run(
                "settle",
                "settle",
                "--run",
                run,
                *sum((["--signatures", d] for d in docs), []),
                "--deployment",
                self.out / "deployment.json",
                "--claims-dir",
                self.out / "claims",
                "--key-file",
                self.key_file(roles.operator),
                "--json",
            )
        )
        self.facts["tx"]["submitPeriod"] = last_tx(self.clients.ledger, "PeriodSubmitted")
        advance_time(self.net.w3, self.clients.ledger.challenge_window() + 1)
        paid, units = {}, {}
        for peer in roles.peers:
            claim = self.out / "claims" / f"{peer.address}-period0.json"
            if not claim.exists():  # not in the contribution table (rejected or fraud): nothing to claim
                paid[peer.address], units[peer.address] = 0, 0
                continue
            units[peer.address] = json.loads(claim.read_text())["units"]
            before = self.clients.token.balance_of(peer.address)
            self.procs.run(
                f"claim-{peer.address[:8]}",
                "claim",
                "--claim-file",
                claim,
                "--rpc",
                self.net.rpc_url,
                "--deployment",
                self.out / "deployment.json",
                "--key-file",
                self.key_file(peer),
            )
            paid[peer.address] = self.clients.token.balance_of(peer.address) - before
        return {
            "settled": settled,
            "paid": paid,
            "units": units,
            "reports": [json.loads(r.read_text()) for r in reports],
        }

    # -- 5. promotion ----------------------------------------------------------------------------
    def promote(self, run: Path, maddr: str, cid: str, roles: Roles) -> dict:
        from coordination.chain.clock import advance_time

        chain = ["--rpc", self.net.rpc_url, "--deployment", self.out / "deployment.json"]
        store = ["--store", self.out / "peer0" / "store"]  # the nomination names the adapter weights' hash
        operator = ["--key-file", self.key_file(roles.operator), "--json"]
        nominated = json.loads(self.procs.run("nominate", "nominate", cid, "--run", run, *chain, *store, *operator))
        nominated |= json.loads(self.procs.run("fix-seed", "fix-seed", cid, "--run", run, *chain, *operator))
        bundles = [self.out / "validators" / f"eval-{i}.json" for i in range(len(roles.validators))]
        attest = ["eval-attest", cid, "--run", run, "--n", self.cfg.attest_eval_n, "--initial-peers", maddr, *chain]
        self.procs.run_parallel(
            [
                (
                    f"eval-attest-{i}",
                    [
                        *attest,
                        "--out",
                        bundles[i],
                        "--store",
                        self.out / f"validator{i}" / "store",
                        "--key-file",
                        self.key_file(v),
                        "--json",
                    ],
                    None,
                )
                for i, v in enumerate(roles.validators)
            ],
            timeout=self.step_timeout_s,
        )
        proposed = json.loads(
            self.procs.run(
                "propose",
                "propose",
                cid,
                "--run",
                run,
                *sum((["--eval", b] for b in bundles), []),
                *chain,
                "--key-file",
                self.key_file(roles.operator),
                "--json",
            )
        )
        pid = proposed["proposal"]
        advance_time(self.net.w3, self.clients.governor.voting_delay() + 1)
        for name, voter in [("operator", roles.operator), *((f"v{i}", v) for i, v in enumerate(roles.validators))]:
            self.procs.run(f"vote-{name}", "vote", pid, "for", *chain, "--key-file", self.key_file(voter))
        advance_time(self.net.w3, self.clients.governor.voting_period() + 1)
        operator = ["--key-file", self.key_file(roles.operator)]
        self.procs.run("queue", "promote", pid, *chain, *operator)  # into the timelock
        advance_time(self.net.w3, self.clients.timelock.min_delay() + 1)
        self.procs.run("promote", "promote", pid, *chain, *operator)
        self.facts["tx"]["nominate"] = last_tx(self.clients.registry, "CheckpointNominated")
        self.facts["tx"]["promote"] = last_tx(self.clients.registry, "CheckpointPromoted")
        eval_bundle = json.loads(bundles[0].read_text())
        status = self.procs.run("status", "status", "--run", run, "--initial-peers", maddr, *chain, "--json")
        return {"nominated": nominated, "proposal": pid, "eval": eval_bundle, "status": json.loads(status)}

    # -- 6. newcomer -----------------------------------------------------------------------------
    def newcomer(self, run: Path, maddr: str, roles: Roles) -> dict:
        self.procs.start("newcomer", *self.join_args(run, maddr, roles.newcomer, "newcomer", self.cfg.epochs + 1))
        done = lambda s: _json_line(s) and '"final_checkpoint"' in s  # noqa: E731
        line = self.procs.wait_output("newcomer", done, timeout=self.step_timeout_s)
        return json.loads(line)

    # -- 7. summary ------------------------------------------------------------------------------
    def accuracy_curve(self, history: list[dict], store_dir: Path, promoted: str) -> list[dict]:
        """Held-out accuracy of every `eval_every`-th epoch checkpoint and of the promoted one."""
        from peft import PeftModel

        from coordination.checkpoints import CheckpointStore
        from trainer.base_models import load_pinned_base
        from trainer.eval import evaluate
        from trainer.tasks import get_task

        store, task = CheckpointStore(store_dir), get_task(self.cfg.task, **self.cfg.task_params)
        points = [h for h in history if h["epoch"] % self.cfg.eval_every == 0][1:]
        points.append({"epoch": self.cfg.epochs, "checkpoint": promoted})
        curve = [{"epoch": 0, "accuracy": self.facts["accuracy_before"]}]
        for point in points:
            adapter = store.checkout(point["checkpoint"])
            base, tokenizer = load_pinned_base(**self.spec.model.pins)
            model = PeftModel.from_pretrained(base, str(adapter)).eval()
            acc = evaluate(
                model, tokenizer, task, n=self.cfg.eval_n, seed=self.cfg.eval_seed,
                max_new_tokens=self.cfg.eval_max_new_tokens,
            )["accuracy"]  # fmt: skip
            curve.append({"epoch": point["epoch"] + (0 if point["checkpoint"] == promoted else 0), "accuracy": acc})
        return curve


def base_model_pins(base: str, *, given: dict) -> dict:
    """What the run spec pins of `base` unless `given` pins it: its package version (built-ins), its directory CID."""
    from trainer.base_models import base_dir_cid, builtin_revision, is_builtin_base, local_base_dir

    pins = {}
    if is_builtin_base(base) and "revision" not in given:
        pins["revision"] = builtin_revision(base)
    if "base_cid" not in given:
        pins["base_cid"] = base_dir_cid(local_base_dir(base))
    return pins


def last_tx(client, event: str) -> str | None:
    """Hash of the transaction behind the latest `event` of a contract (for the summary)."""
    logs = getattr(client.contract.events, event).get_logs(from_block=0)
    return "0x" + bytes(logs[-1]["transactionHash"]).hex() if logs else None


def reward_curve(peer_results: list[dict]) -> list[dict]:
    """Mean rollout reward (and sampled correctness) per epoch over all peers."""
    by_epoch: dict[int, list] = {}
    for result in peer_results:
        for h in result["history"]:
            if h["reward_mean"] is not None:
                by_epoch.setdefault(h["epoch"], []).append(h)
    return [
        {
            "epoch": e,
            "reward": sum(h["reward_mean"] for h in hs) / len(hs),
            "correct": sum((h["correct_rate"] or 0.0) for h in hs) / len(hs),
        }
        for e, hs in sorted(by_epoch.items())
    ]


def plot(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    rewards = summary["reward_curve"]
    ax.plot([r["epoch"] for r in rewards], [r["correct"] for r in rewards], label="sampled correctness (train)")
    ax.plot([r["epoch"] for r in rewards], [r["reward"] for r in rewards], label="mean reward (train)", alpha=0.6)
    acc = summary["accuracy_curve"]
    ax.plot([a["epoch"] for a in acc], [a["accuracy"] for a in acc], "o-", label="held-out pass@1 (greedy)")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, max(1.0, max((r["reward"] for r in rewards), default=1.0)))
    ax.set_title(f"hivetune demo: {summary['peers']} peers, promoted {summary['promoted'][:16]}...")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def epoch_cid_agreement(peers: list[dict]) -> dict:
    """Epochs for which the peers' journals name one CID (no two peers hold different states of one epoch)."""
    journals = [p.get("cids", {}) for p in peers]
    epochs = sorted(set().union(*journals), key=int) if journals else []
    agree = sum(1 for e in epochs if len({j[e] for j in journals if e in j}) == 1)
    held_by_all = sum(1 for e in epochs if all(e in j for j in journals))
    return {"epochs": len(epochs), "agree": agree, "held_by_all": held_by_all}


def verdict_kinds(reports: list[dict]) -> dict[str, int]:
    """How many verdicts of every validator ruled each kind (NONE = accepted and paid)."""
    kinds: dict[str, int] = {}
    for report in reports:
        for v in report.get("verdicts", []):
            kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
    return kinds


def print_summary(summary: dict, console) -> None:
    from rich.table import Table

    table = Table(title="hivetune public run: summary")
    table.add_column("what")
    table.add_column("value", overflow="fold")
    table.add_row(f"held-out pass@1 before ({summary['start']})", f"{summary['accuracy_before']:.3f}")
    table.add_row("held-out pass@1 after (promoted)", f"{summary['accuracy_after']:.3f}")
    table.add_row("transparent eval (validators, chain seed)", summary["transparent_eval"])
    table.add_row("promoted checkpoint (on chain)", summary["promoted"])
    table.add_row("newcomer started from", summary["newcomer_start"])
    agree = summary["epoch_cids"]
    table.add_row("epochs where every peer holds one CID", f"{agree['agree']}/{agree['epochs']}")
    for peer, paid in summary["rewards"].items():
        table.add_row(
            f"reward paid to {peer[:10]}…", f"{paid / TOKEN:.4f} HIVE ({summary['units'].get(peer, 0)} units)"
        )
    table.add_row("verdicts", json.dumps(summary["verdicts"]))
    table.add_row("honest receipts flagged / unpaid (not in round)",
                  f"{summary['honest_flagged']} / {summary['verdict_kinds'].get('NOT_IN_ROUND', 0)}")  # fmt: skip
    for name, tx in summary["tx"].items():
        table.add_row(f"tx {name}", str(tx))
    table.add_row("wall time", f"{summary['seconds']:.0f} s")
    console.print(table)


def run_demo(cfg: PublicRunConfig) -> dict:
    """The whole public run (see module docstring); returns the summary (also written as JSON + PNG)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console()
    out = Path(cfg.output_dir)
    if out.exists():
        shutil.rmtree(out)  # a rerun starts clean
    out.mkdir(parents=True)
    demo = PublicRun(cfg, console)
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    threads = os.environ.get("OMP_NUM_THREADS")
    if cfg.torch_threads > 0:  # this process and every process it starts
        from trainer.models import set_torch_threads

        os.environ["OMP_NUM_THREADS"] = str(cfg.torch_threads)
        set_torch_threads(cfg.torch_threads)
    stages = [
        "warm start + eval",
        "chain: anvil, deploy, stake",
        "bootstrap",
        "collaborative GRPO",
        "validate + settle + claim",
        "nominate, eval, propose, vote, promote",
        "newcomer joins from promoted",
        "summary",
    ]
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            overall = progress.add_task("public run", total=len(stages))

            def stage(i):
                progress.update(overall, completed=i, description=f"public run: {stages[i]}")

            stage(0)
            warm = demo.warm_start()
            stage(1)
            roles = demo.start_chain()
            run = demo.write_run_spec(warm)
            stage(2)
            maddr = demo.bootstrap(run)
            stage(3)
            peers = demo.train(run, maddr, roles, progress)
            stage(4)
            rewards = demo.settle(run, maddr, roles)
            stage(5)
            cid = peers[0]["final_checkpoint"]
            promotion = demo.promote(run, maddr, cid, roles)
            stage(6)
            newcomer = demo.newcomer(run, maddr, roles)
            stage(7)
            current = demo.clients.registry.current(demo.spec.run_id)
            curve = demo.accuracy_curve(peers[0]["history"], out / "peer0" / "store", current.cid)
            progress.update(overall, completed=len(stages))
        summary = {
            "peers": cfg.peers,
            "epochs": cfg.epochs,
            "run_id": demo.spec.run_id,
            "model": cfg.model,
            "start": demo.facts["start"],
            "accuracy_before": demo.facts["accuracy_before"],
            "accuracy_after": curve[-1]["accuracy"],
            "accuracy_curve": curve,
            "reward_curve": reward_curve(peers),
            "trained_checkpoint": cid,
            "peer_checkpoints": [p["final_checkpoint"] for p in peers],
            "epoch_cids": epoch_cid_agreement(peers),
            "promoted": current.cid,
            "promoted_eval_digest": "0x" + current.eval_digest.hex(),
            "transparent_eval": "{correct}/{total} on seed {seed}".format(**promotion["eval"]),
            "proposal": promotion["proposal"],
            "status": promotion["status"],
            "newcomer_start": newcomer["start_checkpoint"],
            "newcomer": newcomer,
            "rewards": rewards["paid"],
            "units": rewards["units"],
            "verdicts": [r["counts"] for r in rewards["reports"]],
            # every demo peer is honest: any non-ACCEPTED verdict is an honest receipt flagged (NOT_IN_ROUND: unpaid
            # because its gradient missed the epoch's round, which is the rule, not a flag)
            "verdict_kinds": verdict_kinds(rewards["reports"]),
            "honest_flagged": sum(
                n for k, n in verdict_kinds(rewards["reports"]).items() if k not in ("NONE", "NOT_IN_ROUND")
            ),
            "tx": demo.facts["tx"],
            "seconds": time.monotonic() - started,
            "pids": demo.procs.pids + [demo.net.node.process.pid],
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        plot(summary, out / "summary.png")
        print_summary(summary, console)
        console.print(f"plot: {out / 'summary.png'}   data: {out / 'summary.json'}   logs: {out / 'logs'}")
        return summary
    finally:
        demo.procs.stop_all()
        if demo.net is not None:
            demo.net.stop()
        signal.signal(signal.SIGTERM, previous)
        if cfg.torch_threads > 0:
            os.environ.pop("OMP_NUM_THREADS") if threads is None else os.environ.update(OMP_NUM_THREADS=threads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--output_dir", default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--peers", type=int, default=None)
    options = parser.parse_args(argv)
    cfg = PublicRunConfig.load(
        options.config, output_dir=options.output_dir, epochs=options.epochs, peers=options.peers
    )
    try:
        run_demo(cfg)
    except KeyboardInterrupt:
        print("interrupted: every process the demo started was stopped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
