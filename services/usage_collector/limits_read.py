"""Read side of usage limits: the entitlement check and the tenants at or over a limit
(docs/limits.md). Storage: adapters/limits.py."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.usage_collector.adapters.limits import COUNTERS, counter_id, windows_of
from services.usage_collector.limits import Entitlement, entitlement_of
from services.usage_collector.query import SEQUENCES, usage_totals


async def entitlement(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, meter: str, now: datetime
) -> Entitlement | None:
    """`tenant_id`'s entitlement to `meter` in its limits window containing `now`; None when
    the tenant has no window containing `now` (no subscription, or it has ended).

    A limited meter costs two `_id` reads (the tenant's usage sequence document, then the
    window's counter); `used` counts the events whose batch the collector has committed
    (docs/limits.md#freshness). A meter without a limit in the window answers `limit` None
    and `allowed` True, with `used` read from the window's buckets. `db` must decode
    `Decimal128` as `Decimal` (`services.common.mongo.CODEC_OPTIONS`)."""
    seq = await db[SEQUENCES].find_one({"_id": tenant_id}, projection={"windows": 1})
    window = next((w for w in windows_of(seq) if w.contains(now)), None)
    if window is None:
        return None
    period = (window.start, window.end)
    if meter in window.limits:
        limit, hard = window.limits[meter]
        doc = await db[COUNTERS].find_one({"_id": counter_id(tenant_id, meter, window.start)})
        if doc is not None:
            return entitlement_of(tenant_id, meter, limit, hard, Decimal(doc["used"]), period,
                                  doc["updated_at"])
    else:
        limit, hard = None, False
    used, as_of = await _used_from_buckets(db, tenant_id, meter, window.start, window.end)
    return entitlement_of(tenant_id, meter, limit, hard, used, period, as_of or window.start)


async def _used_from_buckets(
    db: AsyncDatabase[dict[str, Any]], tenant_id: str, meter: str, start: datetime,
    end: datetime,
) -> tuple[Decimal, datetime | None]:
    totals = [t for t in await usage_totals(db, tenant_id, start, end) if t.meter == meter]
    if not totals:
        return Decimal(0), None
    changed = [t.last_changed for t in totals if t.last_changed is not None]
    if len(totals) == 1:
        return totals[0].quantity, max(changed, default=None)
    # several services: sum and count add up; max and the others take the largest
    aggregation = totals[0].aggregation
    quantities = [t.quantity for t in totals]
    if aggregation in ("sum", "count"):
        used = sum(quantities, Decimal(0))
    elif aggregation == "avg":
        events = sum(t.events for t in totals)
        used = Decimal(0) if not events else sum(
            (t.quantity * t.events for t in totals), Decimal(0)) / events
    else:
        used = max(quantities)
    return used, max(changed, default=None)


async def tenants_at_limits(
    db: AsyncDatabase[dict[str, Any]], now: datetime, percent: int = 80
) -> list[Entitlement]:
    """The (tenant, meter) limits whose window contains `now` and whose usage is at or over
    `percent` % of the limit, most used first (then tenant, meter). One indexed query."""
    query = {"period_end": {"$gt": now}, "period_start": {"$lte": now},
             "percent": {"$gte": percent}}
    out = []
    async for doc in db[COUNTERS].find(query):
        out.append(entitlement_of(
            doc["tenant_id"], doc["meter"], Decimal(doc["limit"]), bool(doc["hard"]),
            Decimal(doc["used"]), (doc["period_start"], doc["period_end"]), doc["updated_at"]))
    out.sort(key=lambda e: (-(e.used / e.limit) if e.limit else 0, e.tenant_id, e.meter))
    return out
