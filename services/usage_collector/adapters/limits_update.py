"""Applying a tenant's `UsageLimitsChanged` (docs/limits.md#windows): the windows onto its
usage sequence document and its counters brought in line, in one transaction. Storage:
adapters/limits.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from contracts.plans import UsageLimitsChanged
from services.common.mongo_errors import mongo_unavailable
from services.usage_collector.adapters.limits import (
    COUNTERS,
    LATE_USAGE,
    Alerts,
    counter_from_buckets,
    counter_id,
    counter_op,
    finish_counter,
    windows_of,
)
from services.usage_collector.query import SEQUENCES

_DUPLICATE_RETRIES = 10


def _window_docs(event: UsageLimitsChanged) -> list[dict[str, Any]]:
    return [{"start": w.period_start.astimezone(UTC), "end": w.period_end.astimezone(UTC),
             "limits": [{"meter": lim.meter, "limit": lim.limit, "hard": lim.hard}
                        for lim in w.limits]} for w in event.windows]


def ended_windows(
    stored: list[dict[str, Any]], announced: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """The stored window documents to keep beside the `announced` ones: those that ended
    (end <= `now`) less than `LATE_USAGE` ago and overlap no announced window, so usage that
    arrives after a period's rollover still counts toward that period (docs/limits.md)."""
    def overlaps(w: dict[str, Any]) -> bool:
        return any(w["start"] < a["end"] and a["start"] < w["end"] for a in announced)

    return [w for w in stored
            if w["end"] <= now < w["end"] + LATE_USAGE and not overlaps(w)]


async def write_limits(
    db: AsyncDatabase[dict[str, Any]], s: AsyncClientSession, event: UsageLimitsChanged,
    now: datetime,
) -> list[int] | None:
    """Store `event`'s windows on the tenant's usage sequence document inside transaction
    `s`, and bring the tenant's counters in line with them: each (window, limit) counter
    recomputed from the buckets (the limit may be new or changed), counters of limits no
    longer announced deleted, thresholds already reached announced. Stored windows that
    ended less than `LATE_USAGE` before `now` stay, with their counters (`ended_windows`).
    None when the stored `limits_version` is already >= `event.version` (a redelivery or an
    older message: nothing changes); else the thresholds announced."""
    seq = await db[SEQUENCES].find_one({"_id": event.tenant_id}, session=s)
    if seq is not None and int(seq.get("limits_version", 0)) >= event.version:
        return None
    docs = _window_docs(event)
    kept = ended_windows(list((seq or {}).get("windows") or ()), docs, now)
    await db[SEQUENCES].update_one(
        {"_id": event.tenant_id},
        {"$set": {"limits_version": event.version, "windows": kept + docs},
         "$setOnInsert": {"seq": 0}}, upsert=True, session=s)
    stored = {d["_id"]: d async for d in db[COUNTERS].find({"tenant_id": event.tenant_id},
                                                           session=s)}
    alerts = Alerts()
    keep = {counter_id(event.tenant_id, meter, w.start)
            for w in windows_of({"windows": kept}) for meter in w.limits}
    ops: list[InsertOne[dict[str, Any]] | UpdateOne] = []
    for w in windows_of({"windows": docs}):
        for meter in w.limits:
            cid = counter_id(event.tenant_id, meter, w.start)
            keep.add(cid)
            doc = await counter_from_buckets(db, s, event.tenant_id, meter, w, stored.get(cid))
            alerts.check(doc)  # announced thresholds stay announced: one event each
            ops.append(counter_op(finish_counter(doc, now), cid in stored))
    if ops:
        await db[COUNTERS].bulk_write(ops, ordered=False, session=s)
    gone = [cid for cid in stored if cid not in keep]
    if gone:
        await db[COUNTERS].delete_many({"_id": {"$in": gone}}, session=s)
    await alerts.write(db, s)
    return [e.threshold_percent for e in alerts.events]


async def apply_limits(
    db: AsyncDatabase[dict[str, Any]], event: UsageLimitsChanged, now: datetime
) -> list[int] | None:
    """`write_limits` in its own transaction, retried by the driver on transient errors and
    write conflicts (a usage batch of the same tenant committing meanwhile), and here when a
    concurrent batch created the same sequence document or counter first (a duplicate `_id`,
    up to `_DUPLICATE_RETRIES` times). Idempotent. Raises `DependencyUnavailable` when
    MongoDB does not answer."""
    async def run(s: AsyncClientSession) -> list[int] | None:
        return await write_limits(db, s, event, now)

    for attempt in range(1, _DUPLICATE_RETRIES + 1):
        try:
            with mongo_unavailable("MongoDB (usage limits)"):
                async with db.client.start_session() as session:
                    return await session.with_transaction(run)
        except (DuplicateKeyError, BulkWriteError):
            if attempt == _DUPLICATE_RETRIES:
                raise
            await asyncio.sleep(0.01 * attempt)  # back-off before the next attempt
    raise AssertionError("unreachable")
