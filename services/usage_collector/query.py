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

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.usage_collector.totals import HOUR, Part, combine, exact_add, parts_in

AGGREGATES = "usage_aggregates"
UNIQUE = "usage_unique"
SEQUENCES = "usage_sequences"
#: What `PeriodFold` reads of a bucket (a projection: `seq` and `_id` stay on the server).
BUCKET_FIELDS = {"_id": 0, "tenant_id": 1, "service": 1, "meter": 1, "hour": 1,
                 "aggregation": 1, "sum": 1, "count": 1, "max": 1, "latest": 1,
                 "latest_time": 1, "quarters": 1, "updated_at": 1}
#: What `PeriodFold` reads of a `usage_unique` record.
UNIQUE_FIELDS = {"_id": 0, "tenant_id": 1, "service": 1, "meter": 1, "hour": 1,
                 "resource_id": 1, "quarters": 1}


@dataclass(frozen=True)
class UsageTotal:
    """The quantity of one meter of one service over an interval, per its aggregation."""

    service: str
    meter: str
    aggregation: str
    quantity: Decimal
    events: int
    last_changed: datetime | None


def _merge(a: Part, b: Part) -> Part:
    """Two sub-totals as one, for every aggregation at once (sum and count add, max and
    latest keep the larger); exact like `combine`."""
    latest_time, latest = max((a.latest_time, a.latest), (b.latest_time, b.latest))
    return Part(min(a.start, b.start), exact_add(a.sum, b.sum), a.count + b.count,
                max(a.max, b.max), latest, latest_time)


class _MeterFold:
    """The buckets of one service and meter: hours wholly inside the period folded into one
    sub-total as they arrive, the (at most two) hours a boundary cuts kept whole until the
    meter's aggregation is known."""

    __slots__ = ("first_hour", "aggregation", "whole", "whole_changed", "edges")

    def __init__(self, hour: datetime, aggregation: str) -> None:
        self.first_hour = hour
        self.aggregation = aggregation
        self.whole: Part | None = None
        self.whole_changed: datetime | None = None
        self.edges: list[dict[str, Any]] = []

    def add(self, doc: dict[str, Any], start: datetime, end: datetime) -> None:
        hour: datetime = doc["hour"]
        if hour < self.first_hour:  # the earliest bucket names the meter's aggregation
            self.first_hour, self.aggregation = hour, doc["aggregation"]
        if start <= hour and hour + HOUR <= end:
            part = parts_in(doc, start, end)[0]
            self.whole = part if self.whole is None else _merge(self.whole, part)
            changed: datetime = doc["updated_at"]
            if self.whole_changed is None or changed > self.whole_changed:
                self.whole_changed = changed
        else:
            self.edges.append(doc)

    def parts(self, start: datetime, end: datetime) -> tuple[list[Part], datetime | None]:
        """The sub-totals [start, end) covers, and when the buckets holding them changed."""
        parts = [] if self.whole is None else [self.whole]
        changed = [] if self.whole_changed is None else [self.whole_changed]
        for doc in self.edges:
            found = parts_in(doc, start, end, self.aggregation)
            if found:
                parts.extend(found)
                changed.append(doc["updated_at"])
        return parts, max(changed, default=None)


class PeriodFold:
    """One tenant's usage over [start, end), folded from its stored documents in any order:
    the one computation behind `usage_totals` and `bulk_read.usage_totals_many`, so the two
    cannot differ.

    Feed it the `usage_aggregates` buckets (`add_bucket`) and, for the meters
    `unique_meters` names, the `usage_unique` records (`add_unique`) whose hour `covers`
    accepts, then read `totals()`. Memory stays per meter, not per bucket: an hour wholly
    inside the period is added to a running sub-total at once; only the hours a boundary cuts
    are kept. A meter's aggregation is that of its earliest bucket (they differ only for a
    custom meter sent with conflicting aggregations).
    """

    __slots__ = ("start", "end", "_meters", "_distinct")

    def __init__(self, start: datetime, end: datetime) -> None:
        self.start = start
        self.end = end
        self._meters: dict[tuple[str, str], _MeterFold] = {}
        self._distinct: dict[tuple[str, str], set[str]] = {}

    def covers(self, hour: datetime) -> bool:
        """Whether the UTC hour starting at `hour` overlaps the period."""
        return self.start - HOUR < hour < self.end

    def add_bucket(self, doc: dict[str, Any]) -> None:
        """Fold one bucket (`BUCKET_FIELDS`; decimals as `Decimal`) whose hour `covers`."""
        key = (doc["service"], doc["meter"])
        fold = self._meters.get(key)
        if fold is None:
            fold = self._meters[key] = _MeterFold(doc["hour"], doc["aggregation"])
        fold.add(doc, self.start, self.end)

    def add_unique(self, doc: dict[str, Any]) -> None:
        """Count one `usage_unique` record (`UNIQUE_FIELDS`) whose hour `covers`: its
        resource when it was seen in a quarter-hour starting in the period (a record written
        without quarters: when its hour starts in the period)."""
        if "quarters" in doc:  # as `$elemMatch` / `$exists: false` select them
            quarters = doc["quarters"]
            seen = isinstance(quarters, list) and any(
                self.start <= q < self.end for q in quarters)
        else:
            seen = self.start <= doc["hour"] < self.end
        if seen:
            self._distinct.setdefault((doc["service"], doc["meter"]), set()).add(
                doc["resource_id"])

    def unique_meters(self) -> list[tuple[str, str]]:
        """(service, meter) of the `unique_count` meters seen so far."""
        return [key for key, fold in self._meters.items() if fold.aggregation == "unique_count"]

    def totals(self) -> list[UsageTotal]:
        """The totals, sorted by service then meter; a meter without events is absent.
        Raises `totals.UsageSumOverflow` for a sum beyond 34 significant digits."""
        out = []
        for (service, meter), fold in sorted(self._meters.items()):
            parts, changed = fold.parts(self.start, self.end)
            if not parts:
                continue
            distinct = len(self._distinct.get((service, meter), ()))
            out.append(UsageTotal(
                service=service, meter=meter, aggregation=fold.aggregation,
                quantity=combine(fold.aggregation, parts, distinct),
                events=sum(p.count for p in parts), last_changed=changed))
        return out


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
    service, then meter; a meter without events in the interval is absent. Computed by
    `PeriodFold`, as `bulk_read.usage_totals_many` does for many tenants at once.
    """
    fold = PeriodFold(start, end)
    hours = {"$gt": start - HOUR, "$lt": end}
    async for doc in db[AGGREGATES].find({"tenant_id": tenant_id, "hour": hours},
                                         projection=BUCKET_FIELDS):
        fold.add_bucket(doc)
    for service, meter in fold.unique_meters():
        query = {"tenant_id": tenant_id, "meter": meter, "service": service, "hour": hours}
        async for doc in db[UNIQUE].find(query, projection=UNIQUE_FIELDS):
            fold.add_unique(doc)
    return fold.totals()


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
