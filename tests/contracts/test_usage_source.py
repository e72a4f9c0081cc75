"""One suite for the invoicer's `UsageSource`, run against every implementation: the in-memory
usage and the collector's data read through its api (usage written by the collector's own code,
this test's database). What the invoicer relies on: totals over [start, end) per service and
meter, exact and counted once across adjacent periods; a marker read before usage that any
later change exceeds; `changed_since` that sees exactly the changes after a marker."""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.common.settings import CommonSettings
from services.invoicer.adapters.usage import CollectorUsage, InMemoryUsage, UsageSource
from tests.integration.test_invoicer_support import collect_usage
from tests.support.mongo import service_database

JUNE = datetime(2013, 6, 1, tzinfo=UTC)
JULY = datetime(2013, 7, 1, tzinfo=UTC)
AUGUST = datetime(2013, 8, 1, tzinfo=UTC)
Add = Callable[[str, str, str, datetime, str], Awaitable[None]]


@dataclass
class Usage:
    """An implementation and the way its usage is written (as the collector accepts it)."""

    source: UsageSource
    add: Add


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.unit),
                        pytest.param("collector", marks=pytest.mark.integration)])
async def usage(request: pytest.FixtureRequest) -> AsyncIterator[Usage]:
    """Each test runs once per implementation, without usage."""
    if request.param == "memory":
        memory = InMemoryUsage()

        async def add(tenant: str, meter: str, service: str, at: datetime, qty: str) -> None:
            memory.add(tenant, meter, service, at, qty)

        yield Usage(memory, add)
        return
    settings: CommonSettings = request.getfixturevalue("common_settings")  # own database
    async with service_database(settings) as (_client, db):

        async def record(tenant: str, meter: str, service: str, at: datetime, qty: str) -> None:
            await collect_usage(db, tenant, meter, service, at, qty)

        yield Usage(CollectorUsage(db), record)


async def test_totals_are_per_service_and_meter_over_the_half_open_interval(
    usage: Usage,
) -> None:
    await usage.add("acme", "cpu_hours", "web", datetime(2013, 6, 10, 5, tzinfo=UTC), "4")
    await usage.add("acme", "cpu_hours", "web", datetime(2013, 6, 30, 23, 45, tzinfo=UTC), "0.25")
    await usage.add("acme", "cpu_hours", "db", datetime(2013, 6, 11, tzinfo=UTC), "1.5")
    await usage.add("acme", "cpu_hours", "web", JULY, "100")  # the next period's
    await usage.add("globex", "cpu_hours", "web", datetime(2013, 6, 12, tzinfo=UTC), "9")

    june = await usage.source.totals("acme", JUNE, JULY)
    assert [(t.service, t.meter, t.quantity, t.events) for t in june] == [
        ("db", "cpu_hours", Decimal("1.5"), 1), ("web", "cpu_hours", Decimal("4.25"), 2)]
    july = await usage.source.totals("acme", JULY, AUGUST)
    assert [(t.service, t.quantity) for t in july] == [("web", Decimal(100))]
    assert await usage.source.totals("initech", JUNE, JULY) == []


async def test_the_marker_starts_at_zero_and_every_change_exceeds_it(usage: Usage) -> None:
    assert await usage.source.marker("acme") == 0
    await usage.add("acme", "cpu_hours", "web", datetime(2013, 6, 10, tzinfo=UTC), "4")
    first = await usage.source.marker("acme")
    assert first > 0
    await usage.add("acme", "cpu_hours", "web", datetime(2013, 6, 11, tzinfo=UTC), "1")
    assert await usage.source.marker("acme") > first
    assert await usage.source.marker("globex") == 0


async def test_changed_since_sees_only_later_changes_in_the_interval(usage: Usage) -> None:
    await usage.add("acme", "cpu_hours", "web", datetime(2013, 6, 10, tzinfo=UTC), "4")
    marker = await usage.source.marker("acme")
    assert not await usage.source.changed_since("acme", JUNE, JULY, marker)

    await usage.add("acme", "cpu_hours", "web", datetime(2013, 7, 10, tzinfo=UTC), "1")
    assert not await usage.source.changed_since("acme", JUNE, JULY, marker)
    assert await usage.source.changed_since("acme", JULY, AUGUST, marker)

    await usage.add("acme", "cpu_hours", "web", datetime(2013, 6, 20, tzinfo=UTC), "2")
    assert await usage.source.changed_since("acme", JUNE, JULY, marker)
    assert not await usage.source.changed_since("globex", JUNE, JULY, 0)


async def test_many_tenants_at_once_read_what_each_tenants_own_read_reads(usage: Usage) -> None:
    await usage.add("acme", "cpu_hours", "web", datetime(2013, 6, 10, 5, tzinfo=UTC), "4")
    await usage.add("acme", "cpu_hours", "db", datetime(2013, 7, 2, tzinfo=UTC), "1.5")
    await usage.add("globex", "cpu_hours", "web", datetime(2013, 6, 12, tzinfo=UTC), "9")
    requests = [("acme", JUNE, JULY), ("acme", JULY, AUGUST), ("globex", JUNE, JULY),
                ("initech", JUNE, JULY)]

    many = await usage.source.totals_many(requests)
    assert many == {r: await usage.source.totals(*r) for r in requests}
    assert [(t.service, t.quantity) for t in many[("acme", JULY, AUGUST)]] == [
        ("db", Decimal("1.5"))]
    assert many[("initech", JUNE, JULY)] == []
    markers = await usage.source.markers(["acme", "globex", "initech"])
    assert markers == {"acme": await usage.source.marker("acme"),
                       "globex": await usage.source.marker("globex"), "initech": 0}
    assert markers["acme"] > 0
