"""Usage limits in the collector's store: counters kept in the batch transaction, entitlement
answers around the limit, exactly one threshold alert per crossing (docs/limits.md)."""

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from contracts.plans import (
    UsageLimitsChanged,
    UsageThresholdReached,
    threshold_event_id,
)
from services.usage_collector.adapters.limits import COUNTERS, OUTBOX
from services.usage_collector.adapters.limits_update import apply_limits
from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from services.usage_collector.api import entitlement, tenants_at_limits
from tests.integration.limits_support import batch, event, limits_changed

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
NEXT_END = datetime(2026, 5, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 20, tzinfo=UTC)


def limits(version: int, limit: str = "100", hard: bool = True,
           tenant: str = "acme", meter: str = "cpu_hours") -> UsageLimitsChanged:
    return limits_changed(version, (START, END), (END, NEXT_END), limit=limit, hard=hard,
                          tenant=tenant, meter=meter)


async def alerts(db: Any) -> list[UsageThresholdReached]:
    return [UsageThresholdReached.model_validate_json(d["payload"])
            async for d in db[OUTBOX].find({}).sort("_id")]


@pytest.fixture
async def store(mongo_db: Any) -> MongoUsageStore:
    await ensure_indexes(mongo_db)
    return MongoUsageStore(mongo_db)


@pytest.mark.parametrize(("used", "allowed", "remaining"), [
    ("0", True, "100"), ("79", True, "21"), ("80", True, "20"), ("99.5", True, "0.5"),
    ("100", False, "0"), ("130", False, "0"),
])
async def test_a_hard_limit_refuses_exactly_from_the_limit(
    mongo_db: Any, store: MongoUsageStore, used: str, allowed: bool, remaining: str,
) -> None:
    await apply_limits(mongo_db, limits(1), NOW)
    if used != "0":
        await store.apply(batch(event(1, used)), [])
    got = await entitlement(mongo_db, "acme", "cpu_hours", NOW)
    assert got is not None
    assert (got.limit, got.used, got.remaining, got.allowed, got.hard) == (
        Decimal(100), Decimal(used), Decimal(remaining), allowed, True)
    assert (got.period_start, got.period_end) == (START, END)


async def test_a_soft_limit_stays_allowed_over_the_limit(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    await apply_limits(mongo_db, limits(1, hard=False), NOW)
    await store.apply(batch(event(1, "150")), [])
    got = await entitlement(mongo_db, "acme", "cpu_hours", NOW)
    assert got is not None and (got.allowed, got.used, got.remaining) == (
        True, Decimal(150), Decimal(0))


async def test_no_window_answers_none_and_an_unlimited_meter_reads_the_buckets(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    await store.apply(batch(event(1, "3", meter="bandwidth_gb")), [])
    assert await entitlement(mongo_db, "acme", "bandwidth_gb", NOW) is None
    await apply_limits(mongo_db, limits(1), NOW)
    got = await entitlement(mongo_db, "acme", "bandwidth_gb", NOW)
    assert got is not None and (got.limit, got.used, got.allowed) == (None, Decimal(3), True)
    assert await entitlement(mongo_db, "acme", "cpu_hours", datetime(2027, 1, 1, tzinfo=UTC)
                             ) is None


async def test_each_threshold_is_announced_once_however_often_events_come_again(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    await apply_limits(mongo_db, limits(1), NOW)
    first = batch(event(1, "50"), event(2, "31"))
    assert (await store.apply(first, [])).thresholds == (80,)
    assert (await store.apply(batch(event(1, "50"), event(2, "31")), [])).thresholds == ()
    other = MongoUsageStore(mongo_db)  # a second collector, replaying and going on
    assert (await other.apply(batch(event(2, "31"), event(3, "19")), [])).thresholds == (100,)
    assert (await other.apply(batch(event(4, "5")), [])).thresholds == ()
    await apply_limits(mongo_db, limits(1), NOW)  # the same update redelivered
    got = await alerts(mongo_db)
    assert sorted((a.threshold_percent, a.used) for a in got) == [
        (80, Decimal(81)), (100, Decimal(100))]
    assert {a.event_id for a in got} == {
        threshold_event_id("acme", "cpu_hours", "2026-03-01T00:00:00Z", t) for t in (80, 100)}
    counter = await mongo_db[COUNTERS].find_one({"tenant_id": "acme", "period_start": START})
    assert (counter["used"], counter["count"], counter["thresholds"]) == (
        Decimal(105), 4, [80, 100])


async def test_two_collectors_racing_on_one_tenant_count_every_event_once(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    await apply_limits(mongo_db, limits(1), NOW)
    stores = [store, MongoUsageStore(mongo_db)]
    batches = [batch(*(event(100 * k + i, "1") for i in range(50))) for k in range(4)]
    await asyncio.gather(*(stores[k % 2].apply(b, []) for k, b in enumerate(batches)),
                         *(stores[k % 2].apply(b, []) for k, b in enumerate(batches)))
    got = await entitlement(mongo_db, "acme", "cpu_hours", NOW)
    assert got is not None and (got.used, got.allowed) == (Decimal(200), False)
    assert sorted(a.threshold_percent for a in await alerts(mongo_db)) == [80, 100]


async def test_usage_before_the_window_arrived_makes_a_correct_counter_and_its_alerts(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    await store.apply(batch(event(1, "85"), event(2, "7", time="2026-02-27T10:00:00Z"),
                            event(3, "2", time="2026-04-02T10:00:00Z")), [])
    assert await apply_limits(mongo_db, limits(1), NOW) == [80]
    got = await entitlement(mongo_db, "acme", "cpu_hours", NOW)
    assert got is not None and got.used == Decimal(85), "February's usage is not March's"
    nxt = await entitlement(mongo_db, "acme", "cpu_hours", datetime(2026, 4, 5, tzinfo=UTC))
    assert nxt is not None and nxt.used == Decimal(2)
    await store.apply(batch(event(4, "15")), [])
    assert sorted(a.threshold_percent for a in await alerts(mongo_db)) == [80, 100]


async def test_an_older_limits_version_changes_nothing_and_a_newer_one_moves_the_limit(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    await store.apply(batch(event(1, "60")), [])
    assert await apply_limits(mongo_db, limits(2, limit="100"), NOW) == []
    assert await apply_limits(mongo_db, limits(1, limit="50"), NOW) is None
    got = await entitlement(mongo_db, "acme", "cpu_hours", NOW)
    assert got is not None and got.limit == Decimal(100)
    assert await apply_limits(mongo_db, limits(3, limit="70"), NOW) == [80]
    got = await entitlement(mongo_db, "acme", "cpu_hours", NOW)
    assert got is not None and (got.limit, got.remaining) == (Decimal(70), Decimal(10))
    ended = UsageLimitsChanged(tenant_id="acme", version=4, windows=())
    assert await apply_limits(mongo_db, ended, NOW) == []
    assert await entitlement(mongo_db, "acme", "cpu_hours", NOW) is None
    assert await mongo_db[COUNTERS].count_documents({}) == 0


async def test_a_limits_update_and_a_batch_of_the_same_tenant_serialise(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    await store.apply(batch(event(1, "10")), [])
    for round_ in range(5):
        events = [event(1000 * (round_ + 1) + i, "1") for i in range(20)]
        await asyncio.gather(apply_limits(mongo_db, limits(round_ + 1), NOW),
                             store.apply(batch(*events), []))
    got = await entitlement(mongo_db, "acme", "cpu_hours", NOW)
    assert got is not None and got.used == Decimal(110), "no batch missed the window"


async def test_tenants_at_or_over_a_limit_are_listed_most_used_first(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    for tenant in ("acme", "beta", "gamma"):
        await apply_limits(mongo_db, limits(1, tenant=tenant), NOW)
    await store.apply(batch(event(1, "79", tenant="acme"), event(2, "120", tenant="beta"),
                            event(3, "80", tenant="gamma")), [])
    listed = await tenants_at_limits(mongo_db, NOW)
    assert [(e.tenant_id, e.used, e.allowed) for e in listed] == [
        ("beta", Decimal(120), False), ("gamma", Decimal(80), True)]
    assert [e.tenant_id for e in await tenants_at_limits(mongo_db, NOW, percent=100)] == ["beta"]


async def test_a_computations_limit_counts_events_whatever_their_quantity(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    await store.apply(batch(event(1, "5", meter="computations")), [])
    await apply_limits(mongo_db, limits(1, limit="3", meter="computations"), NOW)
    await store.apply(batch(event(2, "7", meter="computations")), [])
    got = await entitlement(mongo_db, "acme", "computations", NOW)
    assert got is not None and (got.used, got.remaining, got.allowed) == (
        Decimal(2), Decimal(1), True)
    await store.apply(batch(event(3, "0", meter="computations")), [])
    got = await entitlement(mongo_db, "acme", "computations", NOW)
    assert got is not None and (got.used, got.allowed) == (Decimal(3), False)


async def test_a_first_batch_and_the_first_limits_of_new_tenants_race_without_loss(
    mongo_db: Any, store: MongoUsageStore
) -> None:
    tenants = [f"new{i}" for i in range(6)]
    await asyncio.gather(
        *(apply_limits(mongo_db, limits(1, tenant=t), NOW) for t in tenants),
        store.apply(batch(*(event(i, "3", tenant=t) for i, t in enumerate(tenants))), []))
    for tenant in tenants:
        got = await entitlement(mongo_db, tenant, "cpu_hours", NOW)
        assert got is not None and got.used == Decimal(3), tenant
