"""Usage that arrives after its period rolled over (consumer lag at the period's end) still
counts toward that period's limit and announces its thresholds once, while the limits updates
keep the ended window (docs/limits.md#late-usage)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts.plans import (
    UsageThresholdReached,
)
from services.usage_collector.adapters.limits import COUNTERS, LATE_USAGE, OUTBOX, counter_id
from services.usage_collector.adapters.limits_update import apply_limits
from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from services.usage_collector.api import entitlement
from tests.integration.limits_support import batch, event, limits_changed

pytestmark = pytest.mark.integration

MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)
MAY = datetime(2026, 5, 1, tzinfo=UTC)
JUN = datetime(2026, 6, 1, tzinfo=UTC)
ROLLOVER = APR + timedelta(minutes=5)


def store_at(db: Any, at: datetime) -> MongoUsageStore:
    return MongoUsageStore(db, clock=lambda: at)


async def march_alerts(db: Any) -> list[int]:
    found = [UsageThresholdReached.model_validate_json(d["payload"])
             async for d in db[OUTBOX].find({})]
    return sorted(e.threshold_percent for e in found if e.period_start == MAR)


@pytest.fixture
async def march_at_70(mongo_db: Any) -> Any:
    """acme on a hard 100 cpu_hours limit, 70 used in March, then the rollover to April."""
    await ensure_indexes(mongo_db)
    await apply_limits(mongo_db, limits_changed(1, (MAR, APR), (APR, MAY)), MAR)
    await store_at(mongo_db, MAR).apply(batch(event(1, "70", "2026-03-30T10:00:00Z")), [])
    await apply_limits(mongo_db, limits_changed(2, (APR, MAY), (MAY, JUN)), ROLLOVER)
    return mongo_db


async def test_usage_of_the_ended_period_arriving_after_the_rollover_counts_there_once(
    march_at_70: Any,
) -> None:
    db = march_at_70
    late = batch(event(2, "30", "2026-03-31T23:50:00Z"), event(3, "5", "2026-04-01T00:01:00Z"))
    await store_at(db, ROLLOVER).apply(late, [])
    await store_at(db, ROLLOVER).apply(late, [])  # redelivered

    march = await db[COUNTERS].find_one({"_id": counter_id("acme", "cpu_hours", MAR)})
    assert march is not None and march["used"] == Decimal(100)
    assert await march_alerts(db) == [80, 100]
    april = await entitlement(db, "acme", "cpu_hours", ROLLOVER)
    assert april is not None and (april.period_start, april.used) == (APR, Decimal(5))


async def test_a_later_limits_update_keeps_the_ended_window_and_its_counter(
    march_at_70: Any,
) -> None:
    db = march_at_70
    await apply_limits(db, limits_changed(3, (APR, MAY), (MAY, JUN)), ROLLOVER + timedelta(hours=1))
    await store_at(db, ROLLOVER).apply(batch(event(2, "10", "2026-03-31T23:50:00Z")), [])

    march = await db[COUNTERS].find_one({"_id": counter_id("acme", "cpu_hours", MAR)})
    assert march is not None and march["used"] == Decimal(80)
    assert await march_alerts(db) == [80]


async def test_a_limits_update_after_the_grace_drops_the_ended_window_and_later_usage(
    march_at_70: Any,
) -> None:
    db = march_at_70
    await apply_limits(db, limits_changed(3, (APR, MAY), (MAY, JUN)), APR + LATE_USAGE - timedelta(
        seconds=1))
    assert await db[COUNTERS].find_one({"_id": counter_id("acme", "cpu_hours", MAR)})

    await apply_limits(db, limits_changed(4, (APR, MAY), (MAY, JUN)), APR + LATE_USAGE)
    await store_at(db, APR + LATE_USAGE).apply(batch(event(2, "30", "2026-03-31T23:50:00Z")),
                                              [])
    assert await db[COUNTERS].find_one({"_id": counter_id("acme", "cpu_hours", MAR)}) is None
    assert await march_alerts(db) == []
    april = await entitlement(db, "acme", "cpu_hours", APR + LATE_USAGE)
    assert april is not None and april.used == Decimal(0)


async def test_the_last_period_of_a_cancelled_subscription_still_counts_late_usage(
    mongo_db: Any,
) -> None:
    await ensure_indexes(mongo_db)
    await apply_limits(mongo_db, limits_changed(1, (MAR, APR)), MAR)
    await apply_limits(mongo_db, limits_changed(2), ROLLOVER)  # the subscription ended with March
    await store_at(mongo_db, ROLLOVER).apply(batch(event(1, "80", "2026-03-31T23:50:00Z")), [])

    assert await march_alerts(mongo_db) == [80]
    assert await entitlement(mongo_db, "acme", "cpu_hours", ROLLOVER) is None
