"""The demo's supervisor restarts a worker that exits unexpectedly (as an orchestrator would:
same command and environment, log appended, a back-off), counts it, and leaves alone the
workers the demo stops itself."""

import os
import signal
import sys
from pathlib import Path

import pytest

from services.demo.processes import WorkerSet
from services.demo.supervisor import Supervisor
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

# a stand-in worker: prints its kind and an environment variable, then runs until killed
SLEEPER = "import os, sys, time; print('up', sys.argv[1], os.environ['MARK'], flush=True); " \
    "time.sleep(120)"


def sleeper(kind: str) -> list[str]:
    return [sys.executable, "-c", SLEEPER, kind]


def starts(log: Path) -> int:
    return log.read_text().count("up usage-collector")


def crasher(kind: str) -> list[str]:
    return [sys.executable, "-c", "raise SystemExit(3)", kind]


async def test_a_killed_worker_is_started_again_with_its_command_environment_and_log(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    workers = WorkerSet({**os.environ, "MARK": "m1"}, tmp_path, command=sleeper)
    first = workers.start("collector-2", {"MARK": "m2"}, kind="usage-collector")
    other = workers.start("invoicer")
    supervisor = Supervisor(workers, said.append, backoff=0.1)
    try:
        async with supervisor.running():
            await eventually(lambda: starts(first.log) == 1, what="the first start")
            old_pid = first.process.pid
            os.kill(old_pid, signal.SIGKILL)
            await eventually(
                lambda: first.alive() and first.process.pid != old_pid, what="the restart"
            )
            await eventually(lambda: starts(first.log) == 2, what="the second start")
        log = first.log.read_text()
        assert log.count("up usage-collector m2") == 2  # same kind, same environment
        assert f"exited with code -9 (pid {old_pid}); restart 1 by the supervisor" in log
        assert supervisor.restarts == {"collector-2": 1}
        assert other.alive() and "invoicer" not in supervisor.restarts
        assert any("collector-2" in line and "restarting" in line for line in said)
    finally:
        workers.stop_all(grace=5)


async def test_workers_the_demo_stops_are_not_restarted(tmp_path: Path) -> None:
    workers = WorkerSet({**os.environ, "MARK": "m"}, tmp_path, command=sleeper)
    worker = workers.start("notifier")
    supervisor = Supervisor(workers, lambda _: None, backoff=0.0)
    codes = workers.stop_all(grace=5)
    supervisor.check()  # one full pass after the stop: nothing scheduled, nothing started
    assert codes == {"notifier": -signal.SIGTERM}
    assert not worker.alive() and supervisor.restarts == {}
    assert worker.log.read_text().count("restart") == 0


async def test_a_crashing_worker_is_restarted_with_a_growing_capped_back_off(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    workers = WorkerSet(dict(os.environ), tmp_path, command=crasher)
    workers.start("payments")
    supervisor = Supervisor(workers, said.append, backoff=0.05, backoff_cap=0.2)
    try:
        async with supervisor.running():
            await eventually(lambda: supervisor.restarts["payments"] >= 4, what="4 restarts")
    finally:
        workers.stop_all(grace=5)
    waits = [line.split(" in ")[1] for line in said if "restarting it in" in line]
    assert waits[:4] == ["0.05 s", "0.1 s", "0.2 s", "0.2 s"]  # doubled, then capped
    assert all("exited with code 3" in line for line in said if "restarting" in line)
