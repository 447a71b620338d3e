"""The stages of a public run, in order: each a method of `PublicRun` that `run_demo` calls.

1. `warm_start`: the run's base (the SFT'd tiny model, or the base as it is); held-out accuracy before.
2. `start_chain`: anvil with every contract; validators stake and register, peers bond, the operator
   stakes and funds the reward pool; every account's key written to a 0600 key file.
3. `write_run_spec`, `bootstrap`, `train`: run.yaml, `hivetune bootstrap`, then a `hivetune join` per
   peer until each reports its final checkpoint.
4. `settle`: `hivetune validate` and `settle-sign` per validator, `settle`, then a `claim` per peer.
5. `promote`: `nominate`, `fix-seed`, `eval-attest` per validator, `propose`, `vote`, `promote` (queue, execute).
6. `newcomer`: a new peer `hivetune join`s from the promoted checkpoint.
7. `accuracy_curve`: held-out accuracy of the epoch checkpoints, for the summary.

Every child is a `hivetune` command (`processes.hivetune`) whose result is its `--json` line on stdout.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from recipes.public_run.config import TOKEN, PublicRunConfig, base_model_pins
from recipes.public_run.processes import Processes, hivetune

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


@dataclass
class Roles:
    operator: object
    validators: list
    peers: list
    newcomer: object


class PublicRun:
    """One demo run; `run_demo` drives its stages in order and always cleans up."""

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
                    section=cfg.warm_start,
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
    def chain(self) -> dict:
        """The chain options of every command: the devnet's RPC and deployment file."""
        return {"rpc": self.net.rpc_url, "deployment": self.out / "deployment.json"}

    def key_file(self, account) -> Path:
        return self.out / "keys" / f"{account.address}.key"

    def validator_store(self, i: int) -> Path:
        """Validator i's block store: the checkpoints it fetched over libp2p."""
        return self.out / f"validator{i}" / "store"

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
        """Start the run's entry node; its loopback multiaddr, for every other process's --initial-peers."""
        self.procs.start("bootstrap", hivetune("bootstrap", run=run, host_maddr=LOOPBACK))
        maddrs = self.procs.wait_report("bootstrap", timeout=120)["maddrs"]
        loopback = [m for m in maddrs if m.startswith("/ip4/127.0.0.1/")]
        if not loopback:
            raise RuntimeError(f"bootstrap reported no loopback multiaddr: {maddrs}")
        return loopback[0]

    def join_command(self, run: Path, maddr: str, account, name: str, max_epochs: int) -> list[str]:
        home = self.out / name
        return hivetune(
            "join", run=run, initial_peers=maddr, host_maddr=LOOPBACK, key_file=self.key_file(account), **self.chain,
            store=home / "store", rollouts_dir=home / "rollouts", output_dir=home, max_epochs=max_epochs,
            report_to="none", serve=True, **{"from": "promoted"},
        )  # fmt: skip

    def train(self, run: Path, maddr: str, roles: Roles, progress) -> list[dict]:
        """Every peer's `join` report (history, CIDs, final checkpoint), with a progress bar of epochs."""
        names = [f"peer{i}" for i in range(len(roles.peers))]
        for name, account in zip(names, roles.peers, strict=True):
            self.procs.start(name, self.join_command(run, maddr, account, name, self.cfg.epochs))
        bar = progress.add_task("collaborative GRPO (epochs)", total=self.cfg.epochs)
        deadline = time.monotonic() + self.cfg.peer_timeout_s
        results = {}
        while len(results) < len(names):
            for name in names:
                if name not in results and (report := self.procs.report(name, "final_checkpoint")) is not None:
                    results[name] = report
            progress.update(bar, completed=self._epochs_done(names))
            if time.monotonic() > deadline:
                raise RuntimeError(f"peers did not finish {self.cfg.epochs} epochs in {self.cfg.peer_timeout_s:.0f} s")
            time.sleep(1.0)
        progress.update(bar, completed=self.cfg.epochs)
        return [results[n] for n in names]

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
        """Validate, sign and settle period 0, then claim each peer's reward; the validators' reports, the payouts."""
        from coordination.chain.clock import advance_time, mine_now

        validators = list(enumerate(roles.validators))
        verdicts = [self.out / "validators" / f"verdicts-{i}.json" for i, _ in validators]
        audit = {"run": run, "epoch": list(range(self.cfg.epochs)), "initial_peers": maddr, **self.chain,
                 "rollout_rate": self.cfg.rollout_rate}  # fmt: skip
        reports = self.procs.run_parallel(
            [
                (f"validate-{i}", hivetune("validate", **audit, key_file=self.key_file(v), out=verdicts[i]),
                 {"HIVETUNE_STORE": str(self.validator_store(i))})
                for i, v in validators
            ],
            timeout=self.cfg.step_timeout_s,
        )  # fmt: skip  # side by side, each with its own block store (checkpoints fetched over libp2p)
        docs = [self.out / "validators" / f"period-{i}.json" for i, _ in validators]
        # one epoch range and one stake snapshot (a past timestamp) that every validator of the period signs; taken
        # from a block mined now: anvil's latest block dates from the last transaction, before training began
        snapshot = mine_now(self.net.w3) - 1
        sign = {"run": run, "period": 0, "payout": self.cfg.reward_tokens * TOKEN, **self.chain, "first_epoch": 0,
                "last_epoch": self.cfg.epochs - 1, "snapshot": snapshot, "verdicts": verdicts}  # fmt: skip
        self.procs.run_parallel(
            [(f"settle-sign-{i}", hivetune("settle-sign", **sign, key_file=self.key_file(v), out=docs[i]), None)
             for i, v in validators]
        )  # fmt: skip
        settled = self.procs.run(
            "settle", hivetune("settle", run=run, signatures=docs, **self.chain, claims_dir=self.out / "claims",
                               key_file=self.key_file(roles.operator)),
        )  # fmt: skip
        self.facts["tx"]["submitPeriod"] = last_tx(self.clients.ledger, "PeriodSubmitted")
        advance_time(self.net.w3, self.clients.ledger.challenge_window() + 1)
        claims = {Path(p).name: p for p in settled["claims"]}
        paid, units = {}, {}
        for peer in roles.peers:
            claim = claims.get(f"{peer.address}-period0.json")
            if claim is None:  # not in the contribution table (rejected or fraud): nothing to claim
                paid[peer.address], units[peer.address] = 0, 0
                continue
            before = self.clients.token.balance_of(peer.address)
            claimed = self.procs.run(
                f"claim-{peer.address[:8]}", hivetune("claim", claim_file=claim, **self.chain,
                                                      key_file=self.key_file(peer)),
            )  # fmt: skip
            units[peer.address] = claimed["units"]
            paid[peer.address] = self.clients.token.balance_of(peer.address) - before
        return {"settled": settled, "paid": paid, "units": units, "reports": reports}

    # -- 5. promotion ----------------------------------------------------------------------------
    def promote(self, run: Path, maddr: str, cid: str, roles: Roles) -> dict:
        """Nominate `cid`, attest its eval, propose, vote and promote it; the eval, proposal and `status` reports."""
        from coordination.chain.clock import advance_time

        operator = self.key_file(roles.operator)
        store = self.out / "peer0" / "store"  # the nomination names the adapter weights' hash
        nominated = self.procs.run("nominate", hivetune("nominate", cid, run=run, **self.chain, store=store,
                                                        key_file=operator))  # fmt: skip
        nominated |= self.procs.run("fix-seed", hivetune("fix-seed", cid, run=run, **self.chain, key_file=operator))
        bundles = [self.out / "validators" / f"eval-{i}.json" for i in range(len(roles.validators))]
        attest = {"run": run, "n": self.cfg.attest_eval_n, "initial_peers": maddr, **self.chain}
        evals = self.procs.run_parallel(
            [
                (f"eval-attest-{i}", hivetune("eval-attest", cid, **attest, out=bundles[i],
                                              store=self.validator_store(i), key_file=self.key_file(v)), None)
                for i, v in enumerate(roles.validators)
            ],
            timeout=self.cfg.step_timeout_s,
        )  # fmt: skip
        proposed = self.procs.run("propose", hivetune("propose", cid, run=run, eval=bundles, **self.chain,
                                                      key_file=operator))  # fmt: skip
        pid = proposed["proposal"]
        advance_time(self.net.w3, self.clients.governor.voting_delay() + 1)
        for name, voter in [("operator", roles.operator), *((f"v{i}", v) for i, v in enumerate(roles.validators))]:
            self.procs.run(f"vote-{name}", hivetune("vote", pid, "for", **self.chain, key_file=self.key_file(voter)))
        advance_time(self.net.w3, self.clients.governor.voting_period() + 1)
        self.procs.run("queue", hivetune("promote", pid, **self.chain, key_file=operator))  # into the timelock
        advance_time(self.net.w3, self.clients.timelock.min_delay() + 1)
        self.procs.run("promote", hivetune("promote", pid, **self.chain, key_file=operator))
        self.facts["tx"]["nominate"] = last_tx(self.clients.registry, "CheckpointNominated")
        self.facts["tx"]["promote"] = last_tx(self.clients.registry, "CheckpointPromoted")
        status = self.procs.run("status", hivetune("status", run=run, initial_peers=maddr, **self.chain))
        return {"nominated": nominated, "proposal": pid, "eval": evals[0], "status": status}

    # -- 6. newcomer -----------------------------------------------------------------------------
    def newcomer(self, run: Path, maddr: str, roles: Roles) -> dict:
        """A new peer joins from the promoted checkpoint; its `join` report."""
        self.procs.start("newcomer", self.join_command(run, maddr, roles.newcomer, "newcomer", self.cfg.epochs + 1))
        return self.procs.wait_report("newcomer", key="final_checkpoint", timeout=self.cfg.step_timeout_s)

    # -- 7. summary ------------------------------------------------------------------------------
    def accuracy_curve(self, history: list[dict], store_dir: Path, promoted: str) -> list[dict]:
        """Held-out accuracy of every `eval_every`-th epoch checkpoint and of the promoted one."""
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
            model, tokenizer = load_pinned_base(**self.spec.model.pins, adapter_dir=adapter)
            acc = evaluate(
                model, tokenizer, task, n=self.cfg.eval_n, seed=self.cfg.eval_seed,
                max_new_tokens=self.cfg.eval_max_new_tokens,
            )["accuracy"]  # fmt: skip
            curve.append({"epoch": point["epoch"], "accuracy": acc})
        return curve


def last_tx(client, event: str) -> str | None:
    """Hash of the transaction behind the latest `event` of a contract (for the summary)."""
    logs = getattr(client.contract.events, event).get_logs(from_block=0)
    return "0x" + bytes(logs[-1]["transactionHash"]).hex() if logs else None
