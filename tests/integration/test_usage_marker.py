"""The per-tenant usage sequence marker: it moves in the same transaction as the tenant's
buckets, and `usage_changed_since` finds exactly the changes made after a marker."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from services.usage_collector.api import usage_changed_since, usage_marker
from services.usage_collector.domain import parse
from services.usage_collector.merge import BatchMerge

pytestmark = pytest.mark.integration

JULY = datetime(2013, 7, 1, tzinfo=UTC)
AUGUST = datetime(2013, 8, 1, tzinfo=UTC)


def merge_of(*events: tuple[str, str, str]) -> BatchMerge:
    """A batch of cpu_hours events given as (event id, tenant, time)."""
    merge = BatchMerge()
    for n, tenant, time in events:
        merge.add(parse(json.dumps({
            "specversion": "1.0", "id": n, "source": "test", "type": "billing.usage",
            "subject": tenant, "time": time,
            "data": {"meter": "cpu_hours", "quantity": "1", "service": "web"},
        }).encode()))
    return merge


async def test_the_marker_increases_with_each_committed_batch_touching_the_tenant(
    mongo_db: Any,
) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db)
    assert await usage_marker(mongo_db, "acme") == 0, "no usage yet"
    await store.apply(merge_of(("e1", "acme", "2013-07-01T10:00:00Z"),
                               ("e2", "acme", "2013-07-02T10:00:00Z")), [])
    first = await usage_marker(mongo_db, "acme")
    assert first > 0
    await store.apply(merge_of(("e3", "globex", "2013-07-01T10:00:00Z")), [])
    assert await usage_marker(mongo_db, "acme") == first, "another tenant's batch"
    await store.apply(merge_of(("e1", "acme", "2013-07-01T10:00:00Z")), [])
    assert await usage_marker(mongo_db, "acme") == first, "a duplicate changes no bucket"
    await store.apply(merge_of(("e4", "acme", "2013-07-03T10:00:00Z")), [])
    second = await usage_marker(mongo_db, "acme")
    assert second > first
    await store.apply(merge_of(("e5", "acme", "2013-07-03T11:00:00Z"),
                               ("e6", "globex", "2013-07-03T11:00:00Z")), [])
    assert await usage_marker(mongo_db, "acme") > second


async def test_a_late_event_after_the_marker_is_found_and_no_change_finds_nothing(
    mongo_db: Any,
) -> None:
    await ensure_indexes(mongo_db)
    store = MongoUsageStore(mongo_db)
    await store.apply(merge_of(("e1", "acme", "2013-07-15T10:00:00Z"),
                               ("e2", "acme", "2013-08-15T10:00:00Z")), [])
    marker = await usage_marker(mongo_db, "acme")
    assert not await usage_changed_since(mongo_db, "acme", JULY, AUGUST, marker)
    await store.apply(merge_of(("e3", "globex", "2013-07-20T10:00:00Z"),
                               ("e4", "acme", "2013-09-02T10:00:00Z")), [])
    assert not await usage_changed_since(mongo_db, "acme", JULY, AUGUST, marker), (
        "another tenant's July and acme's September are not acme's July"
    )
    before_late = await usage_marker(mongo_db, "acme")
    await store.apply(merge_of(("e5", "acme", "2013-07-31T23:59:59Z")), [])  # late, into July
    assert await usage_changed_since(mongo_db, "acme", JULY, AUGUST, marker)
    assert not await usage_changed_since(
        mongo_db, "acme", AUGUST, AUGUST + timedelta(days=31), before_late
    ), "the late July bucket ends where August starts"
    assert await usage_changed_since(mongo_db, "acme", JULY, AUGUST, 0), "every change is > 0"
    assert not await usage_changed_since(
        mongo_db, "acme", JULY, AUGUST, await usage_marker(mongo_db, "acme")
    )
