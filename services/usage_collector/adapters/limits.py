"""MongoDB side of usage limits (docs/limits.md): the windows, the counters, the alerts.

- The tenant's usage sequence document (`usage_sequences`, `_id` tenant id) also holds the
  limits the invoicer last published: `limits_version` (int) and `windows` (list of
  `{"start", "end", "limits": [{"meter", "limit": Decimal128, "hard"}]}`, the published ones
  after the windows that ended less than `LATE_USAGE` ago, kept for late usage). A batch
  transaction already reads and increments that document, and a limits update rewrites it:
  the two conflict and one of them retries, so no batch misses a window that a concurrent
  update added.
- `usage_limit_counters`: one document per (tenant, meter with a limit, window start),
  `_id` "{tenant}|{meter}|{start}" (start as RFC 3339 UTC): tenant_id, meter,
  period_start, period_end, limit (Decimal128), hard, the window's aggregate so far
  (`sum`, `count`, `max`: exact Decimal128), `used` (the meter's aggregation of them),
  `percent` (used / limit * 100, a float for listing only), `thresholds` (the percentages
  already announced) and `updated_at`. Changed only in the batch transaction that aggregates
  the events (so a redelivered event never counts twice) or in a limits update.
- `usage_collector_outbox`: `UsageThresholdReached` events (`_id` = `threshold_event_id`, so
  two collectors or a replay write the same entry), relayed to `billing.usage-alerts.v1`.

A usage batch updates counters here (`update_counters`); a limits update is applied by
`limits_update.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from contracts.plans import UsageThresholdReached, threshold_event_id
from contracts.topics import TOPIC_USAGE_ALERTS
from contracts.usage import STANDARD_METERS
from services.common.outbox import outbox_collection, outbox_entry
from services.usage_collector.acceptance import Sample
from services.usage_collector.limits import reached
from services.usage_collector.names import SERVICE
from services.usage_collector.query import AGGREGATES, UNIQUE
from services.usage_collector.totals import HOUR, Part, combine, exact_add, parts_in

COUNTERS = "usage_limit_counters"
OUTBOX = outbox_collection(SERVICE)
_QUARTER = timedelta(minutes=15)
#: Counters per `$in` read (they are mostly stored: a server may compare each found document
#: with the whole list, so many small reads beat one large one).
_READ_CHUNK = 100
#: Aggregations a counter keeps up to date from its running sum, count and max; the others
#: (`latest`, `unique_count`) are read again from the window's buckets in each transaction.
_INCREMENTAL = ("sum", "count", "max", "avg")
#: How long after its end a limits update keeps a window (and its counter) beside the
#: announced ones, so usage timestamped in it that arrives late (a lagging consumer at a
#: period's rollover) still counts toward its limit; the first update after that drops it.
LATE_USAGE = timedelta(days=7)


@dataclass(frozen=True)
class Window:
    """One billing period's limits: meter -> (limit, hard) for usage in [start, end)."""

    start: datetime
    end: datetime
    limits: dict[str, tuple[Decimal, bool]]

    def contains(self, at: datetime) -> bool:
        """True when `at` is in [start, end)."""
        return self.start <= at < self.end


def windows_of(doc: dict[str, Any] | None) -> list[Window]:
    """The windows stored on a usage sequence document (none when absent)."""
    out = []
    for w in (doc or {}).get("windows") or ():
        limits = {lim["meter"]: (Decimal(str(lim["limit"])), bool(lim["hard"]))
                  for lim in w["limits"]}
        out.append(Window(w["start"], w["end"], limits))
    return out


def rfc3339(at: datetime) -> str:
    """`at` in UTC as RFC 3339 text with a `Z` (the form `threshold_event_id` takes)."""
    text = at.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def counter_id(tenant_id: str, meter: str, start: datetime) -> str:
    """The `_id` of the counter of (tenant, meter, window start)."""
    return f"{tenant_id}|{meter}|{rfc3339(start)}"


async def ensure_limit_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Create the counters' and the outbox's collections and indexes; idempotent."""
    existing = set(await db.list_collection_names())
    for name in (COUNTERS, OUTBOX):
        if name not in existing:
            try:
                await db.create_collection(name)
            except PyMongoError:  # created concurrently by another collector
                pass
    await db[COUNTERS].create_index([("tenant_id", 1)])
    await db[COUNTERS].create_index([("period_end", 1), ("percent", 1)])
    await db[OUTBOX].create_index([("published", 1), ("seq", 1)])


def _used(aggregation: str, state: dict[str, Any]) -> Decimal:
    part = Part(state["period_start"], state["sum"], state["count"], state["max"],
                Decimal(0), state["period_start"])
    if not state["count"]:
        return Decimal(0)
    return combine(aggregation, [part], 0)


async def _from_buckets(
    db: AsyncDatabase[dict[str, Any]], s: AsyncClientSession | None, tenant_id: str,
    meter: str, window: Window,
) -> tuple[str, dict[str, Any], Decimal]:
    """The window's aggregate of `meter` read from the buckets (in the transaction `s`, so
    this batch's own writes are included): (aggregation, {sum, count, max}, used)."""
    query = {"tenant_id": tenant_id, "meter": meter,
             "hour": {"$gt": window.start - HOUR, "$lt": window.end}}
    parts: list[Part] = []
    aggregation = STANDARD_METERS.get(meter, "sum")
    async for doc in db[AGGREGATES].find(query, session=s):
        aggregation = doc["aggregation"]
        parts.extend(parts_in(doc, window.start, window.end, aggregation))
    total = Decimal(0)
    for p in parts:
        total = exact_add(total, p.sum)
    state = {"sum": total, "count": sum(p.count for p in parts),
             "max": max((p.max for p in parts), default=Decimal(0))}
    if not parts:
        return aggregation, state, Decimal(0)
    distinct = 0
    if aggregation == "unique_count":
        ids = await db[UNIQUE].distinct("resource_id", {
            "tenant_id": tenant_id, "meter": meter,
            "quarters": {"$elemMatch": {"$gte": window.start, "$lt": window.end}},
        }, session=s)
        distinct = len(ids)
    return aggregation, state, combine(aggregation, parts, distinct)


class Alerts:
    """The thresholds crossed in one transaction: outbox entries written with it."""

    def __init__(self) -> None:
        self.events: list[UsageThresholdReached] = []

    def check(self, doc: dict[str, Any]) -> None:
        """Add an event per threshold `doc`'s used value reached that it does not record yet,
        and record them on `doc`."""
        done = set(doc.get("thresholds") or ())
        for t in reached(doc["used"], doc["limit"]):
            if t in done:
                continue
            done.add(t)
            self.events.append(UsageThresholdReached(
                event_id=threshold_event_id(doc["tenant_id"], doc["meter"],
                                            rfc3339(doc["period_start"]), t),
                tenant_id=doc["tenant_id"], meter=doc["meter"],
                period_start=doc["period_start"], period_end=doc["period_end"],
                threshold_percent=t,
                limit=doc["limit"], used=doc["used"], hard=doc["hard"],
            ))
        doc["thresholds"] = sorted(done)

    async def write(self, db: AsyncDatabase[dict[str, Any]], s: AsyncClientSession) -> None:
        """Upsert the events into the outbox by event id (an entry already there stays)."""
        ops = []
        for event in self.events:
            entry = outbox_entry(event, TOPIC_USAGE_ALERTS, event.tenant_id)
            ops.append(UpdateOne({"_id": entry.pop("_id")}, {"$setOnInsert": entry},
                                 upsert=True))
        if ops:
            await db[OUTBOX].bulk_write(ops, ordered=False, session=s)


def finish_counter(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """`doc` with its `percent` (for listing) and `updated_at` set."""
    doc["percent"] = float(doc["used"] * 100 / doc["limit"])
    doc["updated_at"] = now
    return doc


async def update_counters(
    db: AsyncDatabase[dict[str, Any]], s: AsyncClientSession, samples: Iterable[Sample],
    windows: dict[str, list[Window]], now: datetime,
) -> list[int]:
    """Add a batch's new samples to the counters of their tenants' limited meters, inside the
    batch transaction `s` (after its buckets are written), and write the thresholds they
    reach to the outbox. A sample counts in the window containing its quarter-hour's start
    (as the buckets are read). One counter read and one write per (tenant, meter, window)
    touched (a window that ended, while the limits updates keep it, still takes late usage).
    Returns the thresholds announced (percentages, for the metrics)."""
    deltas: dict[tuple[str, str, int], list[Sample]] = {}
    for sample in samples:
        tenant, meter, _, hour = sample.key
        for i, w in enumerate(windows.get(tenant, ())):
            if meter in w.limits and w.contains(hour + sample.quarter * _QUARTER):
                deltas.setdefault((tenant, meter, i), []).append(sample)
    if not deltas:
        return []
    ids = {counter_id(t, m, windows[t][i].start): (t, m, i) for t, m, i in deltas}
    stored: dict[str, dict[str, Any]] = {}
    wanted = list(ids)
    for pos in range(0, len(wanted), _READ_CHUNK):  # small `$in`s: see processed.existing_ids
        chunk = wanted[pos : pos + _READ_CHUNK]
        async for found in db[COUNTERS].find({"_id": {"$in": chunk}}, session=s):
            stored[found["_id"]] = found
    alerts = Alerts()
    ops: list[InsertOne[dict[str, Any]] | UpdateOne] = []
    for cid, (tenant, meter, i) in ids.items():
        w = windows[tenant][i]
        doc = stored.get(cid)
        aggregation = deltas[(tenant, meter, i)][0].aggregation
        if (doc is None or aggregation not in _INCREMENTAL
                or doc.get("aggregation") != aggregation):
            # new, not incremental, or a counter a limits update made before the first
            # events told a custom meter's aggregation: read the window's buckets
            doc = await counter_from_buckets(db, s, tenant, meter, w, doc)
        else:
            for sample in deltas[(tenant, meter, i)]:
                doc["sum"] = exact_add(doc["sum"], sample.quantity)
                doc["count"] += 1
                doc["max"] = max(doc["max"], sample.quantity)
            doc["used"] = _used(doc["aggregation"], doc)
        alerts.check(doc)
        ops.append(counter_op(finish_counter(doc, now), cid in stored))
    await db[COUNTERS].bulk_write(ops, ordered=False, session=s)
    await alerts.write(db, s)
    return [e.threshold_percent for e in alerts.events]


async def counter_from_buckets(
    db: AsyncDatabase[dict[str, Any]], s: AsyncClientSession | None, tenant: str, meter: str,
    w: Window, old: dict[str, Any] | None,
) -> dict[str, Any]:
    """The counter of (`tenant`, `meter`, window `w`) computed from the window's buckets
    (read in transaction `s`), keeping the thresholds `old` already announced."""
    aggregation, state, used = await _from_buckets(db, s, tenant, meter, w)
    limit, hard = w.limits[meter]
    return {"_id": counter_id(tenant, meter, w.start), "tenant_id": tenant, "meter": meter,
            "period_start": w.start, "period_end": w.end, "limit": limit, "hard": hard,
            "aggregation": aggregation, **state, "used": used,
            "thresholds": list((old or {}).get("thresholds") or ())}


def counter_op(doc: dict[str, Any], exists: bool) -> InsertOne[dict[str, Any]] | UpdateOne:
    """Insert a new counter (a concurrent insert is a duplicate `_id`: the transaction
    retries) or rewrite a stored one (a concurrent change is a write conflict: same)."""
    if exists:
        return UpdateOne({"_id": doc["_id"]}, {"$set": {k: v for k, v in doc.items()
                                                      if k != "_id"}})
    return InsertOne(doc)
