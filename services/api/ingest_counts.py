"""How many usage events `POST /v1/usage` accepted, per tenant and UTC day (collection
`api_ingest_counts`; docs/api-endpoints.md, "Usage ingestion").

One document per tenant and day of the events' CloudEvents `time` (not of the request):

    {_id: "{tenant_id}|{YYYY-MM-DD}", tenant_id, day: "YYYY-MM-DD", events: int}

Counts are added after the broker acknowledged the events, so they never exceed what reached
`billing.usage.v1`; a request that fails after the acknowledgement (the database is down) may
leave them below it. The dashboard's usage reconciliation reads them with `accepted_in_periods`.
"""

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

COLLECTION = "api_ingest_counts"


def day_of(moment: datetime) -> str:
    """The UTC day of an aware `moment` as `YYYY-MM-DD`."""
    return moment.astimezone(UTC).date().isoformat()


async def add_accepted(db: AsyncDatabase[dict[str, Any]],
                       events: Iterable[tuple[str, datetime]]) -> None:
    """Count accepted events given as (tenant id, event time): one `bulk_write` of `$inc`
    upserts, one per tenant and UTC day. Not idempotent: call it once per acknowledged request.
    Raises pymongo errors (the caller maps an unavailable database to 503)."""
    counts = Counter((tenant, day_of(moment)) for tenant, moment in events)
    if not counts:
        return
    ops = [
        UpdateOne({"_id": f"{tenant}|{day}"},
                  {"$inc": {"events": n}, "$setOnInsert": {"tenant_id": tenant, "day": day}},
                  upsert=True)
        for (tenant, day), n in sorted(counts.items())
    ]
    await db[COLLECTION].bulk_write(ops, ordered=False)


def _day_floor(value: date | datetime) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    return value


def _day_ceiling(value: date | datetime) -> date:
    """The first day not touched by an exclusive end `value`."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        return utc.date() if utc.timetz() == time(0, tzinfo=UTC) else utc.date() + timedelta(1)
    return value


async def accepted_in_periods(
    db: AsyncDatabase[dict[str, Any]],
    periods: Sequence[tuple[str, date | datetime, date | datetime]],
) -> list[int]:
    """Events the API accepted for each (tenant id, `start`, `end`) of `periods`, over the UTC
    days that overlap [`start`, `end`), in the order given; one query for all of them.

    `start`/`end` are aware datetimes or dates (a date is that day's UTC midnight); counts are
    per whole day, so a datetime inside a day includes that whole day."""
    if not periods:
        return []
    days = [(tenant, _day_floor(start).isoformat(), _day_ceiling(end).isoformat())
            for tenant, start, end in periods]
    query = {"tenant_id": {"$in": sorted({t for t, _, _ in days})},
             "day": {"$gte": min(f for _, f, _ in days), "$lt": max(s for _, _, s in days)}}
    per_tenant: dict[str, list[tuple[str, int]]] = {}
    async for doc in db[COLLECTION].find(query, projection={"tenant_id": 1, "day": 1,
                                                            "events": 1}):
        per_tenant.setdefault(doc["tenant_id"], []).append((doc["day"], int(doc["events"])))
    return [sum(n for day, n in per_tenant.get(tenant, []) if first <= day < stop)
            for tenant, first, stop in days]


async def accepted_by_api(db: AsyncDatabase[dict[str, Any]], tenant_ids: Iterable[str],
                          start: date | datetime, end: date | datetime) -> dict[str, int]:
    """Events the API accepted per tenant over [`start`, `end`) (`accepted_in_periods` with
    one period per tenant). Every tenant of `tenant_ids` is in the result (0 when the API
    accepted nothing for it)."""
    tenants = list(dict.fromkeys(tenant_ids))
    counts = await accepted_in_periods(db, [(t, start, end) for t in tenants])
    return dict(zip(tenants, counts, strict=True))
