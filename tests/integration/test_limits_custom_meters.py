"""Limits on custom meters aggregated by `unique_count` or `latest`: the counter a limits
update creates before any usage reads the window right from the first batch on
(docs/limits.md#counters)."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from contracts.plans import UsageLimitsChanged, threshold_event_id
from services.usage_collector.adapters.limits import COUNTERS, OUTBOX
from services.usage_collector.adapters.limits_update import apply_limits
from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from services.usage_collector.api import entitlement
from tests.integration.limits_support import batch, limits_changed
from tests.integration.limits_support import event as usage

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def event(n: int, qty: str, aggregation: str, resource: str,
          time: str = "2026-03-10T10:05:00Z") -> bytes:
    return usage(n, qty, time, meter="seats", aggregation=aggregation, resource_id=resource)


def seats_limit(limit: str) -> UsageLimitsChanged:
    return limits_changed(1, (START, END), limit=limit, meter="seats")


@pytest.fixture
async def store(mongo_db: Any) -> MongoUsageStore:
    await ensure_indexes(mongo_db)
    return MongoUsageStore(mongo_db)


@pytest.mark.parametrize(("aggregation", "first", "second"), [
    # five distinct resources, then one of them again: still five
    ("unique_count", Decimal(5), Decimal(5)),
    # the latest quantity of the window: 7 in the first batch, then 2
    ("latest", Decimal(7), Decimal(2)),
])
async def test_the_first_batch_after_a_limits_update_counts_on_a_custom_meter(
    mongo_db: Any, store: MongoUsageStore, aggregation: str, first: Decimal, second: Decimal,
) -> None:
    await apply_limits(mongo_db, seats_limit("5"), NOW)
    qty = "7" if aggregation == "latest" else "5"
    await store.apply(batch(*[event(i, qty, aggregation, f"r{i}")
                              for i in range(5)]), [])

    got = await entitlement(mongo_db, "acme", "seats", NOW)
    assert got is not None
    assert (got.used, got.allowed) == (first, False)
    counter = await mongo_db[COUNTERS].find_one({})
    assert counter["aggregation"] == aggregation
    ids = {threshold_event_id("acme", "seats", "2026-03-01T00:00:00Z", t) for t in (80, 100)}
    assert {d["_id"] async for d in mongo_db[OUTBOX].find({})} == ids

    await store.apply(batch(event(99, "2", aggregation, "r0", "2026-03-11T10:05:00Z")), [])
    got = await entitlement(mongo_db, "acme", "seats", NOW)
    assert got is not None and got.used == second
    assert await mongo_db[OUTBOX].count_documents({}) == 2  # 80 and 100 once each
