"""The demo's child processes: `hivetune` commands, each in its own process group, each reporting on stdout.

Every child is `python -m coordination.cli.app COMMAND ... --json`, and its result is one JSON line on
its stdout. A thread per child reads that stdout, keeps the JSON lines and copies every line into
`logs/NAME.log`, next to the child's stderr; nothing is read back from a log.

    procs = Processes(out / "logs")
    procs.start("bootstrap", hivetune("bootstrap", run=run))    # long-running: asked for its first report
    maddrs = procs.wait_report("bootstrap", timeout=120)["maddrs"]
    procs.run("claim", hivetune("claim", claim_file=path, key_file=key))   # one-shot: its last report on exit
    procs.stop_all()                                            # every process group still running

A key is never on argv (`ps` shows argv): children get `--key-file PATH` or $HIVETUNE_KEY.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HIVETUNE = [sys.executable, "-m", "coordination.cli.app"]


def hivetune(command: str, *arguments, **options) -> list[str]:
    """argv of `hivetune COMMAND ARGUMENTS... --OPTION VALUE...`: `key_file=p` is `--key-file p`, a list value
    repeats its option, True is a bare flag, None leaves the option out. `Processes` adds `--json`."""
    argv = [command, *map(str, arguments)]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not None:
            argv += [s for v in (value if isinstance(value, list) else [value]) for s in (flag, str(v))]
    return argv


def json_object(line: str) -> dict | None:
    """The JSON object on `line`, or None when it holds anything else."""
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class Child:
    """One started `hivetune` command: its process (session leader of its own group), its log, its reports."""

    def __init__(self, name: str, argv: list[str], *, log: Path, env: dict):
        self.name, self.command, self.log_path = name, argv[0], log
        self.reports: list[dict] = []  # the JSON lines it printed on stdout, in order
        self._log = open(log, "a")  # noqa: SIM115 - closed in stop
        self.proc = subprocess.Popen(
            [*HIVETUNE, *argv, "--json"], stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
            start_new_session=True, env=env,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, name=f"stdout-{name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for line in self.proc.stdout:
                self._log.write(line)
                self._log.flush()
                if (report := json_object(line)) is not None:
                    self.reports.append(report)
        except (OSError, ValueError):  # the log was closed under a child that outlived its process group
            pass

    def report(self, key: str | None = None) -> dict | None:
        """Its first report (with `key`), None while it runs without one; RuntimeError once it exited without."""
        found = self._first(key)
        if found is None and self.proc.poll() is not None:
            self._reader.join(5.0)  # the lines it printed before exiting
            if (found := self._first(key)) is None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} and no report: {self.tail(8)}")
        return found

    def _first(self, key: str | None) -> dict | None:
        return next((r for r in self.reports if key is None or key in r), None)

    def result(self, timeout: float) -> dict:
        """Wait for it to exit: its last report; RuntimeError when it fails, runs past `timeout` or reports nothing."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"`hivetune {self.command}` ({self.name}) ran past {timeout:.0f} s") from None
        finally:
            self.stop()  # no-op when it exited; kills its group on a timeout or Ctrl-C
        if self.proc.returncode != 0:
            raise RuntimeError(f"`hivetune {self.command}` ({self.name}) failed: {self.tail(5)}")
        if not self.reports:
            raise RuntimeError(f"`hivetune {self.command}` ({self.name}) printed no JSON line: {self.tail(5)}")
        return self.reports[-1]

    def tail(self, n: int) -> str:
        return " | ".join(self.log_path.read_text().strip().splitlines()[-n:])

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM its process group, SIGKILL what is left after `grace_s`; then close its log. The group is
        signalled even when its leader already exited: a leader that crashed leaves its own children running."""
        if _signal_group(self.proc.pid, signal.SIGTERM):
            try:
                self.proc.wait(grace_s)
                _wait_group_gone(self.proc.pid, grace_s)
            except subprocess.TimeoutExpired:
                pass
            if _signal_group(self.proc.pid, signal.SIGKILL):
                self.proc.wait(5)
        self._reader.join(5.0)
        self._log.close()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to every process of group `pgid`; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def _wait_group_gone(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _signal_group(pgid, 0):
        time.sleep(0.1)


class Processes:
    """Every process this demo starts, each in its own session, all stopped by `stop_all` (by process group)."""

    def __init__(self, logs: Path):
        self.logs, self.running, self.pids = logs, {}, []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env: dict | None = None) -> Child:
        """Start `hivetune ARGV --json` as `name`, logging to logs/NAME.log; it runs until it exits or `stop_all`."""
        child = Child(name, argv, log=self.logs / f"{name}.log", env={**os.environ, **(env or {})})
        self.running[name] = child
        self.pids.append(child.proc.pid)
        return child

    def run(self, name: str, argv: list[str], env: dict | None = None, timeout: float = 600.0) -> dict:
        """Run a one-shot command: its report (the JSON line it printed last), or RuntimeError with its log's end."""
        return self.run_parallel([(name, argv, env)], timeout=timeout)[0]

    def run_parallel(self, jobs: list[tuple], *, timeout: float = 600.0) -> list[dict]:
        """Run one-shot commands `(name, argv, env)` side by side (e.g. one per validator); their reports."""
        children = [self.start(name, argv, env) for name, argv, env in jobs]
        reports = []
        for child in children:
            reports.append(child.result(timeout))
            self.running.pop(child.name, None)
        return reports

    def report(self, name: str, key: str | None = None) -> dict | None:
        """The first report (with `key`) of the running `name`, or None yet; RuntimeError if it exited without."""
        return self.running[name].report(key)

    def wait_report(self, name: str, *, key: str | None = None, timeout: float) -> dict:
        """Wait for `name`'s first report (with `key`); RuntimeError if it exits without one or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (found := self.report(name, key)) is not None:
                return found
            time.sleep(0.5)
        raise RuntimeError(f"{name} gave no report within {timeout:.0f} s; see {self.logs / f'{name}.log'}")

    def stop_all(self) -> None:
        for child in reversed(list(self.running.values())):
            child.stop()
        self.running.clear()
