"""Workers as separate OS processes: start each `billing run <worker>`, stop them all."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class WorkerProcess:
    """A started worker: its name, process and log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None


class WorkerSet:
    """Starts workers as `python -m services.cli run <name>` with a given environment, and
    stops exactly those processes (SIGTERM, then SIGKILL after `grace` seconds)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []

    def start(self, name: str, extra_env: dict[str, str] | None = None) -> WorkerProcess:
        """Start worker `name` (e.g. `usage-collector`); its output goes to `<log_dir>/name.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        env = {**self.env, **(extra_env or {})}
        with open(log, "ab") as out:
            proc = subprocess.Popen(  # noqa: S603 - fixed argv
                [sys.executable, "-m", "services.cli", "run", name],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        worker = WorkerProcess(name, proc, log)
        self.workers.append(worker)
        return worker

    def dead(self) -> list[WorkerProcess]:
        """Workers that exited."""
        return [w for w in self.workers if not w.alive()]

    def stop_all(self, grace: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every started worker, wait up to `grace` s, SIGKILL the rest; name -> code."""
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
