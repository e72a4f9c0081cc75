"""Supervision: restart a worker that exits unexpectedly, as an orchestrator would.

While it runs, a `Supervisor` watches every process of a `WorkerSet`. A worker that exits (any
code, including death by SIGKILL) while the set is not stopping is started again with the same
command and environment, its output appended to the same log, after a back-off: `backoff`
seconds, doubled for each further exit within `stable_seconds` of the last restart, at most
`backoff_cap` seconds (the way an orchestrator spaces the restarts of a crashing container).
Every restart is announced through `say` and counted per worker name (`restarts`).
"""

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

from services.demo.processes import WorkerProcess, WorkerSet

POLL_SECONDS = 0.1


class Supervisor:
    """Restarts the exited workers of `workers` while `running()` is entered."""

    def __init__(
        self,
        workers: WorkerSet,
        say: Callable[[str], None],
        backoff: float = 0.5,
        backoff_cap: float = 8.0,
        stable_seconds: float = 30.0,
    ) -> None:
        self.workers = workers
        self.say = say
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        self.stable_seconds = stable_seconds
        #: worker name -> restarts so far
        self.restarts: Counter[str] = Counter()
        self._streak: dict[str, int] = {}
        self._last_restart: dict[str, float] = {}
        self._due: dict[str, float] = {}

    def delay(self, name: str, now: float) -> float:
        """Seconds to wait before restarting `name`, given its recent restarts."""
        last = self._last_restart.get(name)
        streak = self._streak.get(name, 0) if last and now - last < self.stable_seconds else 0
        self._streak[name] = streak + 1
        return float(min(self.backoff * 2.0**streak, self.backoff_cap))

    def check(self) -> None:
        """One pass: schedule a restart for each newly exited worker, restart those due."""
        if self.workers.stopping:
            return
        now = time.monotonic()
        for worker in self.workers.workers:
            if worker.alive():
                continue
            due = self._due.get(worker.name)
            if due is None:
                wait = self.delay(worker.name, now)
                self._due[worker.name] = now + wait
                self.say(
                    f"worker {worker.name} (pid {worker.process.pid}) exited with code "
                    f"{worker.process.returncode}; restarting it in {wait:g} s"
                )
            elif now >= due:
                self._restart(worker, now)

    def _restart(self, worker: WorkerProcess, now: float) -> None:
        old = worker.process
        self.restarts[worker.name] += 1
        self.workers.restart(
            worker,
            f"exited with code {old.returncode} (pid {old.pid}); restart "
            f"{self.restarts[worker.name]} by the supervisor",
        )
        del self._due[worker.name]
        self._last_restart[worker.name] = now
        self.say(f"worker {worker.name} restarted (pid {worker.process.pid})")

    async def watch(self) -> None:
        """Check every `POLL_SECONDS` until cancelled."""
        while True:
            self.check()
            await asyncio.sleep(POLL_SECONDS)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["Supervisor"]:
        """Supervise while the block runs."""
        task = asyncio.create_task(self.watch())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
