"""The periodic loop of every worker's background tasks (`services/common/periodic.py`): a
failing round is logged and counted and the loop goes on; stop ends the wait at once; a round
reporting more work starts the next one without waiting; interval 0 means never."""

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from services.common.periodic import periodic_task, run_every
from tests.support.polling import eventually

pytestmark = pytest.mark.unit

HOUR = 3600.0
STOP_DEADLINE_SECONDS = 5.0


def failures(task: str) -> float:
    value = REGISTRY.get_sample_value("billing_background_failures_total", {"task": task})
    return value or 0.0


async def test_a_failing_round_is_logged_and_counted_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()
    rounds: list[int] = []
    before = failures("flaky-task")

    async def step() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("database went away")

    with caplog.at_level(logging.ERROR, logger="services.common.periodic"):
        task = asyncio.create_task(run_every(0.01, step, stop, "flaky-task"))
        await eventually(lambda: len(rounds) >= 3, what="rounds after the failure", seconds=10)
        stop.set()
        await asyncio.wait_for(task, STOP_DEADLINE_SECONDS)
    assert failures("flaky-task") == before + 1
    (record,) = [r for r in caplog.records if "flaky-task failed" in r.getMessage()]
    assert record.exc_info is not None and "database went away" in str(record.exc_info[1])


async def test_stop_ends_the_wait_between_rounds_at_once() -> None:
    stop = asyncio.Event()
    rounds: list[int] = []

    async def step() -> None:
        rounds.append(1)

    task = asyncio.create_task(run_every(HOUR, step, stop, "hourly-task"))
    await eventually(lambda: rounds, what="the first round")
    stop.set()
    await asyncio.wait_for(task, STOP_DEADLINE_SECONDS)  # an hour's wait would time out here
    assert rounds == [1]


async def test_a_round_reporting_more_work_starts_the_next_without_waiting() -> None:
    stop = asyncio.Event()
    pending = [3]

    async def step() -> bool:
        pending[0] -= 1
        return pending[0] > 0

    task = asyncio.create_task(run_every(HOUR, step, stop, "draining-task"))
    await eventually(lambda: pending[0] == 0, what="three rounds back to back")
    stop.set()
    await asyncio.wait_for(task, STOP_DEADLINE_SECONDS)


async def test_an_interval_of_zero_never_runs_the_step() -> None:
    called: list[int] = []

    async def step() -> None:
        called.append(1)

    await asyncio.wait_for(periodic_task(0, step, "disabled-task")(asyncio.Event()), 1)
    assert called == []


async def test_a_cancelled_loop_is_not_swallowed() -> None:
    stop = asyncio.Event()
    started = asyncio.Event()

    async def step() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run_every(HOUR, step, stop, "cancelled-task"))
    await asyncio.wait_for(started.wait(), STOP_DEADLINE_SECONDS)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert failures("cancelled-task") == 0
