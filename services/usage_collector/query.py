"""Read side of the usage aggregates: what the invoicer prices and tenants see.

Storage (owned by the usage collector; other services only read through this module):
collection `usage_aggregates`, one document per tenant, meter, service and UTC hour:

    _id          "{tenant_id}|{meter}|{service}|{hour:%Y-%m-%dT%H}"
    tenant_id, meter, service: str
    hour         datetime (UTC, start of the hour)
    aggregation  "sum" | "count" | "max" | "latest" | "unique_count" | "avg"
    sum          Decimal128   sum of quantities
    count        int          number of events
    max          Decimal128   largest quantity
    latest       Decimal128   quantity of the event with the latest `time`
    latest_time  datetime     that event's time
    quarters     {"0"|"15"|"30"|"45": {...}}: per quarter-hour that has events, keyed by
                 its first minute, the sub-totals its aggregation reads (`count` and:
                 sum/avg `sum`; max `max`; latest `latest`, `latest_time`;
                 `totals.QUARTER_FIELDS`)
                 (absent in buckets written before quarter-hours: they count whole at the
                 hour's start; docs/usage.md#quarter-hours)
    updated_at   datetime     when the bucket last changed (this collector's clock: informative)
    seq          int          the tenant's usage sequence of the transaction that last
                              changed the bucket (see `usage_marker`, docs/usage.md#sequence)

`unique_count` meters also keep one document per distinct `resource_id` in `usage_unique`
(`_id` "{tenant}|{meter}|{service}|{hour}|{resource_id}", fields tenant_id, meter, service,
hour, resource_id, and `quarters`: the start of each quarter-hour it was seen in), so a
distinct count over any period on quarter-hour boundaries is exact.

Collection `usage_sequences` holds one counter per tenant (`_id` tenant id, `seq` int), moved
in the same transaction as the tenant's bucket changes (docs/usage.md#sequence).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.usage_collector.totals import HOUR, combine, parts_in

AGGREGATES = "usage_aggregates"
UNIQUE = "usage_unique"
SEQUENCES = "usage_sequences"


@dataclass(frozen=True)
class UsageTotal:
    """The quantity of one meter of one service over an interval, per its aggregation."""

    service: str
    meter: str
    aggregation: str
    quantity: Decimal
    events: int
    last_changed: datetime | None


async def _distinct(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, service: str, meter: str,
    start: datetime, end: datetime,
) -> int:
    """Distinct resources seen in the quarter-hours [start, end) covers (whole hours for
    records written without quarters)."""
    query = {
        "tenant_id": tenant_id, "meter": meter, "service": service,
        "hour": {"$gt": start - HOUR, "$lt": end},
        "$or": [{"quarters": {"$elemMatch": {"$gte": start, "$lt": end}}},
                {"quarters": {"$exists": False}, "hour": {"$gte": start, "$lt": end}}],
    }
    return len(await db[UNIQUE].distinct("resource_id", query))


async def usage_totals(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, start: datetime, end: datetime
) -> list[UsageTotal]:
    """Usage of `tenant_id` in the half-open interval [`start`, `end`), by service and meter.

    Exact for `start` and `end` on a quarter-hour (00, 15, 30 or 45 minutes past a UTC hour,
    so also at local midnight in zones such as Asia/Kolkata or Asia/Kathmandu). A boundary
    inside a quarter-hour counts that whole quarter-hour in the interval containing the
    quarter's start: adjacent intervals still count every event exactly once
    (docs/usage.md#quarter-hours). Sums are exact (`totals.combine`); raises
    `totals.UsageSumOverflow` when one would need more than 34 significant digits. `db`
    must decode `Decimal128` as `Decimal` (`services.common.mongo.CODEC_OPTIONS`). Sorted by
    service, then meter; a meter without events in the interval is absent.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    query = {"tenant_id": tenant_id, "hour": {"$gt": start - HOUR, "$lt": end}}
    async for doc in db[AGGREGATES].find(query):
        groups[(doc["service"], doc["meter"])].append(doc)
    totals = []
    for (service, meter), docs in sorted(groups.items()):
        aggregation = docs[0]["aggregation"]
        covered = [(d, parts_in(d, start, end, aggregation)) for d in docs]
        parts = [p for _, doc_parts in covered for p in doc_parts]
        if not parts:
            continue
        distinct = 0
        if aggregation == "unique_count":
            distinct = await _distinct(db, tenant_id, service, meter, start, end)
        totals.append(
            UsageTotal(
                service=service,
                meter=meter,
                aggregation=aggregation,
                quantity=combine(aggregation, parts, distinct),
                events=sum(p.count for p in parts),
                last_changed=max(d["updated_at"] for d, doc_parts in covered if doc_parts),
            )
        )
    return totals


async def usage_marker(db: AsyncDatabase[dict[str, Any]], tenant_id: str) -> int:
    """The tenant's usage sequence now: increases in the same transaction as every change
    to the tenant's usage buckets; 0 when the tenant has none. Read it BEFORE reading usage:
    any change not visible to that read has a larger sequence.

    It depends on no host's clock: the counter document `usage_sequences/{tenant_id}` is
    incremented by each collector transaction that changes the tenant's buckets, and
    concurrent transactions conflict on it, so sequences are unique and follow commit order
    (docs/usage.md#sequence).
    """
    doc = await db[SEQUENCES].find_one({"_id": tenant_id}, projection={"seq": 1})
    return int(doc["seq"]) if doc else 0


async def usage_changed_since(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, start: datetime, end: datetime,
    marker: int,
) -> bool:
    """Whether any bucket of the tenant overlapping [start, end) changed in a transaction
    whose sequence is greater than `marker`.

    Buckets are UTC hours, so a change in the part of an hour that `start` or `end` cuts
    also counts (a caller re-reads and finds the same totals). Uses the index
    (tenant_id, seq, hour).
    """
    query = {"tenant_id": tenant_id, "seq": {"$gt": marker},
             "hour": {"$gt": start - HOUR, "$lt": end}}
    return await db[AGGREGATES].find_one(query, projection={"_id": 1}) is not None


async def newest_hour(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, before: datetime
) -> datetime | None:
    """The start of the newest UTC hour before `before` in which the tenant has aggregated
    usage (any meter or service), or None when it has none."""
    doc = await db[AGGREGATES].find_one(
        {"tenant_id": tenant_id, "hour": {"$lt": before}}, projection={"hour": 1},
        sort=[("hour", -1)])
    return None if doc is None else doc["hour"]
