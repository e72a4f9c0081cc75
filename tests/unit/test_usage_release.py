"""Giving partitions up (a rebalance, or a stop) never waits longer than the grace for a
write: a write blocked on a lock is cancelled, the pending records are dropped (their offsets
are not committed, so they are consumed again), and the consumer loop goes on."""

import asyncio
from typing import Any

import pytest

from services.common.deadletter import DeadLetter
from services.usage_collector.adapters.metrics import RELEASES_ABANDONED
from services.usage_collector.adapters.store import ApplyResult
from services.usage_collector.app import Collector
from services.usage_collector.merge import BatchMerge
from services.usage_collector.settings import UsageSettings
from tests.unit.test_usage_pending import Record, event

pytestmark = pytest.mark.unit


class BlockedStore:
    """A store whose transaction waits until released (as one waiting on a killed
    collector's locks does); records whether it was cancelled."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = False
        self.applied = 0

    async def apply(self, merge: BatchMerge, dead_letter_ids: list[str]) -> ApplyResult:
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.applied += 1
        return ApplyResult(len(merge), merge.duplicates, len(dead_letter_ids), 0, 1)


async def no_dead_letters(dead: list[DeadLetter]) -> None:
    return None


def collector(store: BlockedStore, **settings: Any) -> Collector:
    return Collector(UsageSettings(**settings), store, no_dead_letters)


def poll(first: int, count: int) -> list[Record]:
    return [Record(first + n, b"acme", event(first + n)) for n in range(count)]


def abandoned() -> float:
    return RELEASES_ABANDONED._value.get()  # type: ignore[attr-defined]  # noqa: SLF001


async def test_a_blocked_write_is_cancelled_after_the_grace_and_pending_records_dropped() -> None:
    store = BlockedStore()
    c = collector(store, usage_min_batch_events=1)
    c.pending.take_records(0, poll(0, 5))
    await c._maybe_write()  # noqa: SLF001 - starts the write in the background
    await asyncio.wait_for(store.started.wait(), 5)
    c.pending.take_records(0, poll(5, 3))
    before = abandoned()

    await asyncio.wait_for(c.release(0.2), 5)

    assert store.cancelled and store.applied == 0
    assert len(c.pending) == 0
    assert abandoned() == before + 1
    await c._maybe_write()  # noqa: SLF001 - the loop goes on: nothing to raise, nothing to write


async def test_back_pressure_ends_without_an_error_when_a_release_cancels_the_write() -> None:
    store = BlockedStore()
    c = collector(store, usage_min_batch_events=1, usage_max_batch_events=2)
    c.pending.take_records(0, poll(0, 2))
    await c._maybe_write()  # noqa: SLF001
    await asyncio.wait_for(store.started.wait(), 5)
    c.pending.take_records(0, poll(2, 2))
    waiting = asyncio.create_task(c._maybe_write())  # noqa: SLF001 - waits for the write
    await asyncio.sleep(0)
    assert not waiting.done()

    await asyncio.wait_for(c.release(0.1), 5)

    await asyncio.wait_for(waiting, 5)  # returns: no CancelledError escapes into the loop
    assert store.cancelled


async def test_a_write_that_finishes_within_the_grace_is_kept_and_the_pending_one_written() -> None:
    store = BlockedStore()
    c = collector(store, usage_min_batch_events=1)
    c.pending.take_records(0, poll(0, 4))
    await c._maybe_write()  # noqa: SLF001
    await asyncio.wait_for(store.started.wait(), 5)
    c.pending.take_records(1, poll(0, 2))
    before = abandoned()
    store.release.set()

    await asyncio.wait_for(c.release(5.0), 5)

    assert store.applied == 2 and not store.cancelled
    assert len(c.pending) == 0 and abandoned() == before
