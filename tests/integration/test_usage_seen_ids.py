"""The collector's compact seen ids: duplicates found however late, across batches, through
splits of hot documents, against a concurrent writer, and in the one-document-per-id
records of earlier versions."""

from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from services.usage_collector.adapters.processed import PROCESSED
from services.usage_collector.adapters.seen_ids import (
    SEEN,
    GuardMissed,
    SeenIds,
    count_seen_ids,
    root_key,
)
from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from services.usage_collector.merge import BatchMerge
from services.usage_collector.query import AGGREGATES
from tests.integration.test_usage_store import merge_of

pytestmark = pytest.mark.integration

HOUR = "2013-07-01T10:05:00Z"
ROOT = root_key("acme", "test", datetime(2013, 7, 1, 10, tzinfo=UTC))


def events(first: int, count: int, time: str = HOUR) -> BatchMerge:
    return merge_of(*((n, "1", time) for n in range(first, first + count)))


async def bucket_counts(db: Any) -> dict[str, int]:
    return {d["_id"]: d["count"] async for d in db[AGGREGATES].find({})}


async def test_an_event_redelivered_in_a_later_batch_counts_once(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db)
    first = await store.apply(events(1, 2), [])
    again = await store.apply(events(1, 3), [])  # e1 and e2 again, e3 new
    assert (first.aggregated, first.duplicates) == (2, 0)
    assert (again.aggregated, again.duplicates) == (1, 2)
    assert await count_seen_ids(mongo_db) == 3
    assert await bucket_counts(mongo_db) == {"acme|cpu_hours|web|2013-07-01T10": 3}
    assert dict(again.written)[SEEN] == 1, "one leaf document for the whole hour"


async def test_a_copy_arriving_months_later_is_still_a_duplicate(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db)
    await store.apply(events(1, 1, "2013-07-01T10:05:00Z"), [])
    for n in range(2, 5):  # months of other traffic, other hours
        await store.apply(events(n, 1, f"2013-{n + 6:02d}-01T00:00:00Z"), [])
    late = merge_of((1, "1", "2013-07-01T10:05:00Z"), (9, "1", "2013-10-20T12:00:00Z"))
    result = await store.apply(late, [])
    assert (result.aggregated, result.duplicates) == (1, 1)
    assert (await bucket_counts(mongo_db))["acme|cpu_hours|web|2013-07-01T10"] == 1


async def test_hot_documents_split_by_hash_and_every_id_is_still_found(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db, seen_cap=4)
    await store.apply(events(0, 3), [])
    assert [d async for d in mongo_db[SEEN].find({})] == [
        {"_id": ROOT, "n": 3, "ids": ["e0", "e1", "e2"]}]
    # the batch that adds ids also splits the leaf: its ids and the new ones move down
    split = await store.apply(events(0, 6), [])
    assert (split.aggregated, split.duplicates) == (3, 3)
    root = await mongo_db[SEEN].find_one({"_id": ROOT})
    assert root == {"_id": ROOT, "split": True}
    more = await store.apply(events(6, 100), [])  # > 16 x 4: some children split again
    assert more.aggregated == 100
    depths = {len(d["_id"].removeprefix(ROOT).lstrip("|")) async for d in mongo_db[SEEN].find({})}
    assert {0, 1, 2} == depths, "leaves at depth 2 exist"
    assert await count_seen_ids(mongo_db) == 106
    assert max([len(d.get("ids", [])) async for d in mongo_db[SEEN].find({})]) <= 4
    replay = await store.apply(events(0, 106), [])  # every id found, at whatever depth
    assert (replay.aggregated, replay.duplicates) == (0, 106)
    assert await bucket_counts(mongo_db) == {"acme|cpu_hours|web|2013-07-01T10": 106}


async def test_a_concurrent_writer_of_the_same_ids_document_aborts(mongo_db: Any) -> None:
    await ensure_indexes(mongo_db)
    client, seen = mongo_db.client, SeenIds(cap=4)
    async with client.start_session() as a, client.start_session() as b:
        await a.start_transaction()
        await b.start_transaction()
        found_a = await seen.find(mongo_db, a, events(1, 1).samples)
        found_b = await seen.find(mongo_db, b, events(2, 1).samples)
        await seen.add(mongo_db, a, found_a, set())
        with pytest.raises(OperationFailure):  # both create the hour's document
            await seen.add(mongo_db, b, found_b, set())
        await b.abort_transaction()
        await a.commit_transaction()
    async with client.start_session() as c, client.start_session() as d:
        await c.start_transaction()
        found_c = await seen.find(mongo_db, c, events(3, 1).samples)
        await d.start_transaction()
        found_d = await seen.find(mongo_db, d, events(4, 1).samples)
        await seen.add(mongo_db, d, found_d, set())
        await d.commit_transaction()
        with pytest.raises((OperationFailure, GuardMissed)):  # the leaf moved since c read
            await seen.add(mongo_db, c, found_c, set())
        await c.abort_transaction()
    async with client.start_session() as e:  # a stale read: the count guard misses
        await e.start_transaction()
        stale = await seen.find(mongo_db, e, events(5, 1).samples)
        await e.abort_transaction()
        await seen.add(mongo_db, e, await seen.find(mongo_db, e, events(6, 1).samples), set())
        await e.start_transaction()
        with pytest.raises(GuardMissed):
            await seen.add(mongo_db, e, stale, set())
        await e.abort_transaction()
    assert await count_seen_ids(mongo_db) == 3
    assert await count_seen_ids(mongo_db, "test", "test/e4") == 1


async def test_event_ids_recorded_one_per_document_by_earlier_versions_are_found(
    mongo_db: Any,
) -> None:
    await ensure_indexes(mongo_db)
    await mongo_db[PROCESSED].insert_many([{"_id": "dl|usage|0|7"}])
    only_dead_letters = MongoUsageStore(mongo_db)
    await only_dead_letters.apply(BatchMerge(), [])
    assert only_dead_letters.legacy_ids is False, "no lookups where nothing old can be found"
    await mongo_db[PROCESSED].insert_many([{"_id": "test/e1"}])
    store = MongoUsageStore(mongo_db)
    result = await store.apply(events(1, 2), [])
    assert store.legacy_ids is True
    assert (result.aggregated, result.duplicates) == (1, 1)
    assert await count_seen_ids(mongo_db) == 1, "only the new event is recorded anew"
    assert await bucket_counts(mongo_db) == {"acme|cpu_hours|web|2013-07-01T10": 1}


def test_a_separator_inside_tenant_or_source_cannot_make_two_events_share_a_document() -> None:
    hour = datetime(2013, 7, 1, 10, tzinfo=UTC)
    assert root_key("a|b", "c", hour) != root_key("a", "b|c", hour)
    assert root_key("a%7Cb", "c", hour) != root_key("a|b", "c", hour)
