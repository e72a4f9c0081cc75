"""Many tenants' usage read at once answers exactly what one tenant's read answers: every
aggregation, periods starting inside an hour (:30 and :45 zones, quarter-hour bounds), a tenant
in two requests, a tenant without usage, both ways of querying (a scan of the hour range and
`$in` on the tenants); the markers likewise."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from bson import Decimal128

from services.usage_collector.api import (
    ensure_indexes,
    record_usage,
    usage_marker,
    usage_markers,
    usage_totals,
    usage_totals_many,
)
from services.usage_collector.bulk_read import Strategy, reads_by_scan
from services.usage_collector.query import AGGREGATES, BUCKET_FIELDS, UNIQUE, PeriodFold
from services.usage_collector.totals import UsageSumOverflow

pytestmark = pytest.mark.integration

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
MIDNIGHTS = {"tata": datetime(2013, 8, 1, tzinfo=KOLKATA),
             "yeti": datetime(2013, 8, 1, tzinfo=KATHMANDU),
             "acme": datetime(2013, 8, 1, tzinfo=UTC)}
METERS: list[tuple[str, dict[str, str]]] = [
    ("cpu_hours", {}), ("computations", {}), ("storage_gb", {}),
    ("peak_rps", {"aggregation": "max"}), ("version", {"aggregation": "latest"}),
    ("seats", {"aggregation": "unique_count"}),
]
OFFSETS = [timedelta(minutes=-16), timedelta(seconds=-1), timedelta(0),
           timedelta(minutes=14), timedelta(days=-10, hours=5), timedelta(days=9, hours=3)]
JULY_22 = datetime(2013, 7, 22, tzinfo=UTC)
STRATEGIES: list[Strategy] = ["scan", "in", "auto"]


def event(tenant: str, at: datetime, meter: str, qty: str, **data: str) -> bytes:
    """A usage CloudEvent (unique id) as the collector receives it."""
    return json.dumps({
        "specversion": "1.0", "id": uuid.uuid4().hex, "source": "test", "type": "billing.usage",
        "subject": tenant, "time": at.isoformat(),
        "data": {"meter": meter, "quantity": qty, "service": "web", **data},
    }).encode()


def month(tenant: str, first: int, zone: Any) -> tuple[str, datetime, datetime]:
    """`tenant`'s calendar month `first` of 2013 in `zone`."""
    return (tenant, datetime(2013, first, 1, tzinfo=zone),
            datetime(2013, first + 1, 1, tzinfo=zone))


REQUESTS = [
    month("tata", 7, KOLKATA), month("tata", 8, KOLKATA), month("yeti", 7, KATHMANDU),
    month("acme", 7, UTC), ("acme", JULY_22 + timedelta(minutes=15),
                            JULY_22 + timedelta(minutes=45)),
    month("ghost", 7, UTC), month("acme", 7, UTC),  # repeated: answered once
]


@pytest.fixture
async def db(mongo_db: Any) -> AsyncIterator[Any]:
    """Usage of tata, yeti and acme around their local midnight of 1 August and inside July
    (two batches, two collector clocks), globex's usage that no request asks for, and the
    indexes both ways of reading use."""
    await ensure_indexes(mongo_db)
    for collection in (AGGREGATES, UNIQUE):
        await mongo_db[collection].create_index([("hour", 1)])
    events = []
    for tenant, midnight in MIDNIGHTS.items():
        for n, offset in enumerate(OFFSETS):
            for meter, extra in METERS:
                events.append(event(tenant, midnight + offset, meter, f"{n + 1}.{n}5",
                                    resource_id=f"vm-{n % 3}", **extra))
    events.append(event("globex", JULY_22, "cpu_hours", "7"))
    await record_usage(mongo_db, events, clock=lambda: datetime(2013, 8, 20, tzinfo=UTC))
    later = [event("acme", JULY_22 + timedelta(minutes=m), meter, "0.5", resource_id="vm-9",
                   **extra) for m in (20, 50) for meter, extra in METERS]
    await record_usage(mongo_db, later, clock=lambda: datetime(2013, 8, 21, tzinfo=UTC))
    yield mongo_db


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_many_requests_answer_what_each_tenants_own_read_answers(
    db: Any, strategy: Strategy
) -> None:
    many = await usage_totals_many(db, REQUESTS, strategy=strategy)

    assert list(many) == list(dict.fromkeys(REQUESTS))
    for request in REQUESTS:
        assert many[request] == await usage_totals(db, *request), request
    july = many[month("acme", 7, UTC)]
    assert [t.meter for t in july] == [
        "computations", "cpu_hours", "peak_rps", "seats", "storage_gb", "version"]
    assert {t.last_changed for t in july} == {datetime(2013, 8, 21, tzinfo=UTC)}
    quarter = {t.meter: (t.quantity, t.events) for t in many[REQUESTS[4]]}
    assert quarter["cpu_hours"] == (Decimal("0.5"), 1)  # 00:20 only: 00:00 and 00:50 are out
    assert quarter["seats"] == (Decimal(1), 1)
    assert many[month("ghost", 7, UTC)] == []
    both = [t.quantity for r in REQUESTS[:2] for t in many[r] if t.meter == "seats"]
    assert both == [Decimal(2), Decimal(2)]  # vm-0 is seen on both sides of midnight


async def test_the_fold_takes_buckets_in_any_order(db: Any) -> None:
    tenant, start, end = month("tata", 8, KOLKATA)
    docs = [d async for d in db[AGGREGATES].find({"tenant_id": tenant}, BUCKET_FIELDS)]
    backwards = PeriodFold(start, end)
    for doc in sorted(docs, key=lambda d: d["hour"], reverse=True):
        if backwards.covers(doc["hour"]):
            backwards.add_bucket(doc)
    async for doc in db[UNIQUE].find({"tenant_id": tenant}):
        if backwards.covers(doc["hour"]):
            backwards.add_unique(doc)
    assert backwards.totals() == await usage_totals(db, tenant, start, end)


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_markers_are_each_tenants_sequence_and_zero_without_usage(
    db: Any, strategy: Strategy
) -> None:
    markers = await usage_markers(db, ["acme", "ghost", "tata"], strategy=strategy)

    assert markers == {"acme": await usage_marker(db, "acme"), "ghost": 0,
                       "tata": await usage_marker(db, "tata")}
    assert markers["acme"] > 0
    assert await usage_markers(db, []) == {}
    assert await usage_totals_many(db, []) == {}


async def test_a_quarter_of_the_tenants_with_usage_or_more_is_read_by_a_scan(db: Any) -> None:
    assert await db.usage_sequences.count_documents({}) == 4
    assert await reads_by_scan(db, 1, "auto")
    await db.usage_sequences.insert_many([{"_id": f"t{n}", "seq": 0} for n in range(4)])
    assert not await reads_by_scan(db, 1, "auto")
    assert await reads_by_scan(db, 2, "auto")
    assert not await reads_by_scan(db, 1000, "in")


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_sum_beyond_34_digits_raises_as_the_single_read_does(
    db: Any, strategy: Strategy
) -> None:
    big = Decimal128("9" * 34)
    for hour in (3, 4):
        at = datetime(2013, 7, 2, hour, tzinfo=UTC)
        await db[AGGREGATES].insert_one({
            "_id": f"huge|cpu_hours|web|{at:%Y-%m-%dT%H}", "tenant_id": "huge",
            "meter": "cpu_hours", "service": "web", "hour": at, "aggregation": "sum",
            "sum": big, "count": 1, "max": big, "latest": big, "latest_time": at,
            "updated_at": at, "seq": 1})
    request = month("huge", 7, UTC)
    with pytest.raises(UsageSumOverflow):
        await usage_totals(db, *request)
    with pytest.raises(UsageSumOverflow):
        await usage_totals_many(db, [request, month("acme", 7, UTC)], strategy=strategy)
