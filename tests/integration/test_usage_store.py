"""The collector's MongoDB store: exact decimals through its fast conversions, quarter-hours,
and sums that would overflow (the seen ids: test_usage_seen_ids.py)."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import pytest

from services.common.deadletter import DeadLetter
from services.usage_collector.acceptance import parse
from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from services.usage_collector.handlers import PendingBatch, write_batch
from services.usage_collector.merge import BatchMerge
from services.usage_collector.query import AGGREGATES, UNIQUE, usage_totals

pytestmark = pytest.mark.integration


class Record(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def raw_event(n: int, qty: str, time: str) -> bytes:
    return json.dumps({
        "specversion": "1.0", "id": f"e{n}", "source": "test", "type": "billing.usage",
        "subject": "acme", "time": time,
        "data": {"meter": "cpu_hours", "quantity": qty, "service": "web"},
    }).encode()


def merge_of(*events: tuple[int, str, str]) -> BatchMerge:
    merge = BatchMerge()
    for n, qty, time in events:
        merge.add(parse(raw_event(n, qty, time)))
    return merge


async def test_bucket_decimals_are_stored_and_folded_exactly(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db)
    await store.apply(merge_of(
        (1, "1.500", "2013-07-01T10:05:00Z"), (2, "0.000000000001", "2013-07-01T10:06:00Z")
    ), [])
    await store.apply(merge_of((3, "123456789012.5", "2013-07-01T10:01:00Z")), [])
    (doc,) = [d async for d in mongo_db[AGGREGATES].find({})]
    assert str(doc["sum"]) == "123456789014.000000000001"
    assert (doc["count"], doc["max"]) == (3, Decimal("123456789012.5"))
    assert str(doc["latest"]) == "1E-12", "the latest event (10:06) keeps its exact quantity"


async def test_quarter_hours_fold_across_batches_and_split_the_hour_when_read(
    mongo_db: Any,
) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db)
    await store.apply(merge_of((1, "1", "2013-07-01T10:05:00Z"),
                               (2, "2", "2013-07-01T10:40:00Z")), [])
    await store.apply(merge_of((3, "4", "2013-07-01T10:14:59Z"),
                               (4, "8", "2013-07-01T10:30:00Z")), [])
    (doc,) = [d async for d in mongo_db[AGGREGATES].find({})]
    assert {m: (q["sum"], q["count"]) for m, q in doc["quarters"].items()} == {
        "0": (Decimal(5), 2), "30": (Decimal(10), 2)
    }
    half = datetime(2013, 7, 1, 10, 30, tzinfo=UTC)
    (first,) = await usage_totals(mongo_db, "acme", half - timedelta(hours=1), half)
    (second,) = await usage_totals(mongo_db, "acme", half, half + timedelta(hours=1))
    assert (first.quantity, first.events, second.quantity, second.events) == (5, 2, 10, 2)


async def test_events_that_would_overflow_a_stored_bucket_are_dead_lettered_not_rounded(
    mongo_db: Any,
) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db)
    await store.apply(merge_of((1, "1", "2013-07-01T10:05:00Z")), [])
    near_full = Decimal("9999999999999999999999.999999999999")  # 34 digits: Decimal128's all
    await mongo_db[AGGREGATES].update_one({}, {"$set": {"sum": near_full}})
    batch = PendingBatch("usage")
    batch.take_records(0, [
        Record(offset, b"acme", raw_event(n, qty, time))
        for offset, (n, qty, time) in enumerate([(2, "0.000000000002", "2013-07-01T10:10:00Z"),
                                                 (3, "5", "2013-07-01T11:00:00Z")])
    ])
    published: list[DeadLetter] = []
    committed: list[dict[int, int]] = []

    async def dead_letters(dead: list[DeadLetter]) -> None:
        published.extend(dead)

    async def commit(offsets: dict[int, int]) -> None:
        committed.append(offsets)

    result = await write_batch(batch, store, dead_letters, commit)
    assert [(d.source.offset, d.reason) for d in published] == [(0, "quantity_out_of_range")]
    assert (result.aggregated, result.dead_lettered, committed) == (1, 1, [{0: 2}])
    stored = {d["_id"]: d["sum"] async for d in mongo_db[AGGREGATES].find({})}
    assert stored == {"acme|cpu_hours|web|2013-07-01T10": near_full,
                      "acme|cpu_hours|web|2013-07-01T11": Decimal(5)}


async def test_indexes_serve_the_reads_by_hour_and_no_index_is_kept_for_nothing(
    mongo_db: Any,
) -> None:
    await ensure_indexes(mongo_db)
    aggregates = [i["key"] async for i in await mongo_db[AGGREGATES].list_indexes()]
    unique = [i["key"] async for i in await mongo_db[UNIQUE].list_indexes()]
    assert {"hour": 1} in [dict(k) for k in aggregates]
    assert {"hour": 1} in [dict(k) for k in unique]
    assert {"updated_at": 1} not in [dict(k) for k in aggregates], "no query reads it"
