"""The collector's store when another writer commits to the same tenant between a batch's
first read and its writes (two collectors during a rebalance): the batch's transaction
aborts on the write conflict and is retried, and the sums stay exact (buckets are
rewritten by `_id`, without a count guard: docs/usage.md#batch-write-costs)."""

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import pytest

from services.usage_collector.acceptance import parse
from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from services.usage_collector.merge import BatchMerge
from services.usage_collector.query import AGGREGATES, SEQUENCES

pytestmark = pytest.mark.integration


def merge_of(*events: tuple[str, str], source: str = "test") -> BatchMerge:
    merge = BatchMerge()
    for event_id, qty in events:
        merge.add(parse(json.dumps({
            "specversion": "1.0", "id": event_id, "source": source, "type": "billing.usage",
            "subject": "acme", "time": "2013-07-01T10:05:00Z",
            "data": {"meter": "cpu_hours", "quantity": qty, "service": "web"},
        }).encode()))
    return merge


async def test_a_batch_whose_bucket_another_writer_changed_meanwhile_retries_exactly(
    mongo_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ensure_indexes(mongo_db)
    first, other = MongoUsageStore(mongo_db), MongoUsageStore(mongo_db, retry_max_seconds=0.05)
    await first.apply(merge_of(("e1", "1.5")), [])
    real: Callable[..., Awaitable[Any]] = first.seen.find
    interleaved: list[int] = []

    async def then_another_commits(*args: Any) -> Any:
        found = await real(*args)  # this transaction has read: its snapshot is taken
        if not interleaved:  # once; another source, so only tenant documents are shared
            interleaved.append(
                (await other.apply(merge_of(("e3", "10"), source="other"), [])).aggregated)
        return found

    monkeypatch.setattr(first.seen, "find", then_another_commits)
    result = await first.apply(merge_of(("e2", "0.25")), [])

    assert interleaved == [1]
    assert (result.aggregated, result.attempts) == (1, 2), "the conflict made it retry once"
    (bucket,) = [d async for d in mongo_db[AGGREGATES].find({})]
    assert (bucket["sum"], bucket["count"], bucket["seq"]) == (Decimal("11.75"), 3, 3)
    assert (await mongo_db[SEQUENCES].find_one({"_id": "acme"}))["seq"] == 3
