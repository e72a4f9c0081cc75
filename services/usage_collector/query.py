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
    updated_at   datetime     when the bucket last changed (this collector's clock: informative)
    seq          int          the tenant's usage sequence of the transaction that last
                              changed the bucket (see `usage_marker`, docs/usage.md#sequence)

`unique_count` meters also keep one document per distinct `resource_id` in `usage_unique`
(`_id` "{tenant}|{meter}|{service}|{hour}|{resource_id}", fields tenant_id, meter, service,
hour, resource_id), so a distinct count over any period is exact.

Collection `usage_sequences` holds one counter per tenant (`_id` tenant id, `seq` int), moved
in the same transaction as the tenant's bucket changes (docs/usage.md#sequence).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

AGGREGATES = "usage_aggregates"
UNIQUE = "usage_unique"
SEQUENCES = "usage_sequences"
_HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class UsageTotal:
    """The quantity of one meter of one service over an interval, per its aggregation."""

    service: str
    meter: str
    aggregation: str
    quantity: Decimal
    events: int
    last_changed: datetime | None


def _combine(aggregation: str, docs: list[dict[str, Any]], distinct: int) -> Decimal:
    if aggregation == "sum":
        return sum((Decimal(d["sum"]) for d in docs), Decimal(0))
    if aggregation == "count":
        return Decimal(sum(int(d["count"]) for d in docs))
    if aggregation == "max":
        return max(Decimal(d["max"]) for d in docs)
    if aggregation == "latest":
        return Decimal(max(docs, key=lambda d: d["latest_time"])["latest"])
    if aggregation == "avg":
        total = sum((Decimal(d["sum"]) for d in docs), Decimal(0))
        count = sum(int(d["count"]) for d in docs)
        return total / count if count else Decimal(0)
    if aggregation == "unique_count":
        return Decimal(distinct)
    raise ValueError(f"unknown aggregation {aggregation!r}")


async def usage_totals(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, start: datetime, end: datetime
) -> list[UsageTotal]:
    """Usage of `tenant_id` in the half-open interval [`start`, `end`), by service and meter.

    Buckets are UTC hours: an interval boundary inside an hour includes that whole hour at the
    start and excludes it at the end. Sorted by service, then meter.
    """
    docs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    query = {"tenant_id": tenant_id, "hour": {"$gte": start, "$lt": end}}
    async for doc in db[AGGREGATES].find(query):
        docs[(doc["service"], doc["meter"])].append(doc)
    totals = []
    for (service, meter), group in sorted(docs.items()):
        aggregation = group[0]["aggregation"]
        distinct = 0
        if aggregation == "unique_count":
            values = await db[UNIQUE].distinct(
                "resource_id", {**query, "service": service, "meter": meter}
            )
            distinct = len(values)
        totals.append(
            UsageTotal(
                service=service,
                meter=meter,
                aggregation=aggregation,
                quantity=_combine(aggregation, group, distinct),
                events=sum(int(d["count"]) for d in group),
                last_changed=max((d["updated_at"] for d in group), default=None),
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
             "hour": {"$gt": start - _HOUR, "$lt": end}}
    return await db[AGGREGATES].find_one(query, projection={"_id": 1}) is not None
