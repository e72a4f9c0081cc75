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
    updated_at   datetime     when the bucket last changed (finds late usage)

`unique_count` meters also keep one document per distinct `resource_id` in `usage_unique`
(`_id` "{tenant}|{meter}|{service}|{hour}|{resource_id}", fields tenant_id, meter, service,
hour, resource_id), so a distinct count over any period is exact.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

AGGREGATES = "usage_aggregates"
UNIQUE = "usage_unique"


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
