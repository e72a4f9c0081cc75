"""Workers as separate OS processes: start each `billing run <kind>`, restart one with the same
command and environment, stop them all."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: argv of a worker of kind `kind` (`billing run <kind>`).
Command = Callable[[str], list[str]]


def billing_run(kind: str) -> list[str]:
    """`python -m services.cli run <kind>` with this interpreter."""
    return [sys.executable, "-m", "services.cli", "run", kind]


@dataclass
class WorkerProcess:
    """A started worker: its unique name, its kind (the `billing run` argument), the running
    process, its log file and the environment it was started with."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    kind: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None


class WorkerSet:
    """Starts workers as `python -m services.cli run <kind>` with a given environment, restarts
    one as an orchestrator would (same argv and environment, output appended to its log), and
    stops exactly those processes (SIGTERM, then SIGKILL after `grace` seconds).

    `command` builds a worker's argv from its kind (tests start something else)."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, command: Command = billing_run
    ) -> None:
        self.env = env
        self.log_dir = log_dir
        self.command = command
        self.workers: list[WorkerProcess] = []
        #: set by `stop_all`: from then on an exit is expected, nothing is restarted
        self.stopping = False

    def _spawn(self, kind: str, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        # Its own session: a Ctrl-C in the terminal reaches only the process that started the
        # set, which then stops each worker with one SIGTERM (a second stop signal makes a
        # worker exit at once, with status 70).
        with open(log, "ab") as out:
            return subprocess.Popen(  # noqa: S603 - argv built from a fixed command
                self.command(kind),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )

    def start(
        self, name: str, extra_env: dict[str, str] | None = None, kind: str | None = None
    ) -> WorkerProcess:
        """Start worker `name` of `kind` (default: `name`, e.g. `usage-collector`); its output
        goes to `<log_dir>/<name>.log`. Names must be unique within the set."""
        if any(w.name == name for w in self.workers):
            raise ValueError(f"a worker named {name} was already started")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        env = {**self.env, **(extra_env or {})}
        kind = kind or name
        worker = WorkerProcess(name, self._spawn(kind, log, env), log, kind, env)
        self.workers.append(worker)
        return worker

    def restart(self, worker: WorkerProcess, note: str) -> None:
        """Start `worker` again (it must have exited) with the argv and environment it was
        first started with; `note` is appended to its log before the new output."""
        if worker.alive():
            raise ValueError(f"{worker.name} is still running (pid {worker.process.pid})")
        with open(worker.log, "a") as out:
            out.write(f"--- {note} ---\n")
        worker.process = self._spawn(worker.kind, worker.log, worker.env)

    def of_kind(self, kind: str) -> list[WorkerProcess]:
        """The workers of `kind`, in start order."""
        return [w for w in self.workers if w.kind == kind]

    def dead(self) -> list[WorkerProcess]:
        """Workers that exited."""
        return [w for w in self.workers if not w.alive()]

    def stop_all(self, grace: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every started worker, wait up to `grace` s, SIGKILL the rest; name -> code."""
        self.stopping = True
        for w in self.workers:
            if w.alive():
                w.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for w in self.workers:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                w.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                os.kill(w.process.pid, signal.SIGKILL)
                w.process.wait()
        return {w.name: w.process.returncode for w in self.workers}
