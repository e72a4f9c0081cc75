"""MongoDB side of the collector: one transaction per batch, exact under any failure.

Collections (owned by the usage collector):
- `usage_processed`: `_id` = event id ("{source}/{id}") of every aggregated event, and
  "dl|{topic}|{partition}|{offset}" of every dead-lettered message (the unique `_id` index
  is the de-duplication record, with no time window).
- `usage_aggregates` / `usage_unique`: buckets, schema in `services/usage_collector/query.py`.
- `usage_stats`: one document per writer (a collector process, `_id` "writer|{uuid}") with its
  `aggregated`, `duplicates`, `dead_lettered` counters; the collector's totals are their sums.
  One document per writer, not one shared by all: a transaction never waits for another
  collector's, and a collector killed in the middle of a transaction (whose locks the server
  keeps until the transaction's lifetime limit, 60 s by default) holds no document that
  others write.
- `usage_sequences`: one counter per tenant (`_id` tenant id, `seq`), incremented in the
  transaction that changes the tenant's buckets; each of those buckets records the new `seq`
  (docs/usage.md#sequence). It also holds the tenant's usage limit windows, and the batch
  updates their counters and threshold alerts in the same transaction (adapters/limits.py).

`apply` is atomic: processed ids, bucket changes and counters commit together or not at
all, so a crash at any point loses nothing and counts nothing twice; each touched tenant's
sequence counter moves in the same transaction. Existing buckets are read and rewritten
inside the transaction with the read `count` as a guard; a concurrent
change (another collector during a rebalance) makes the guard miss, a duplicate insert or a
write conflict aborts, and the whole transaction is retried.

Per-event client CPU is kept low: processed ids go in raw `insert` commands (`_insert_ids`)
and bucket decimals are converted by `adapters/decimal128.py` rather than bson's
bit-by-bit Python.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pymongo
from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError

from contracts.base import utc_now
from services.common.mongo_errors import mongo_unavailable
from services.usage_collector.adapters.decimal128 import RAW_DECIMALS, decoded, encoded
from services.usage_collector.adapters.limits import (
    Window,
    ensure_limit_indexes,
    update_counters,
    windows_of,
)
from services.usage_collector.buckets import BucketKey, bucket_id, unique_id
from services.usage_collector.merge import BatchMerge, fold, new_bucket
from services.usage_collector.query import AGGREGATES, SEQUENCES, UNIQUE
from services.usage_collector.totals import UsageSumOverflow

log = logging.getLogger(__name__)

PROCESSED = "usage_processed"
STATS = "usage_stats"
_CHUNK = 5_000
#: `$in` reads of ids that are probably stored (see `_existing_ids`).
_SMALL_CHUNK = 100
#: `$in` reads of buckets, which are mostly stored already.
_BUCKET_CHUNK = 500


class GuardMissed(Exception):
    """A bucket changed between our read and our write: retry the transaction."""


class BucketsFull(Exception):
    """Adding the batch to these stored buckets would make a sum need more than 34
    significant digits (`totals.UsageSumOverflow`). The transaction is aborted, not retried:
    the caller takes the batch's events of these buckets out (dead letters) and applies the
    rest (docs/usage.md#exact-sums)."""

    def __init__(self, keys: list[BucketKey]) -> None:
        super().__init__(f"{len(keys)} buckets would overflow 34 digits: {keys[:3]}")
        self.keys = keys


@dataclass(frozen=True)
class ApplyResult:
    """What one committed batch changed: events newly aggregated, duplicates (in the batch
    or already recorded), dead letters newly recorded, buckets written, attempts taken."""

    aggregated: int
    duplicates: int
    dead_lettered: int
    buckets: int
    attempts: int
    #: Usage thresholds (percent) announced by this batch (docs/limits.md).
    thresholds: tuple[int, ...] = ()


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The processed-record `_id` of a dead-lettered message."""
    return f"dl|{topic}|{partition}|{offset}"


def _chunks(items: list[str], size: int = _CHUNK) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def _existing_ids(
    db: AsyncDatabase[dict[str, Any]], name: str, ids: list[str],
    session: AsyncClientSession | None,
) -> set[str]:
    """Which of `ids` are `_id`s in collection `name`, read in `$in` chunks whose size adapts
    to what is found.

    A server may check every document an `$in` finds against the whole list again (the
    embedded development server does, in Python): a chunk of k ids that all exist then costs
    k * k comparisons, 12 s for 5,000 where 50 chunks of 100 take 0.5 s. Batches are either
    mostly new (the usual case: nothing found, large chunks are cheapest) or mostly seen
    (a redelivery after a crash or a rebalance). So the first chunk is small, the next is
    large while a chunk finds (almost) nothing, and small again as soon as one finds ids.
    """
    found: set[str] = set()
    pos, size = 0, _SMALL_CHUNK
    while pos < len(ids):
        chunk = ids[pos : pos + size]
        pos += len(chunk)
        cursor = db[name].find({"_id": {"$in": chunk}}, {"_id": 1}, session=session)
        hits = [doc["_id"] async for doc in cursor]
        found.update(hits)
        size = _CHUNK if len(hits) * 50 < len(chunk) else _SMALL_CHUNK
    return found


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Create the collections and the indexes the read side uses; idempotent."""
    existing = set(await db.list_collection_names())
    for name in (PROCESSED, AGGREGATES, UNIQUE, STATS, SEQUENCES):
        if name not in existing:
            try:
                await db.create_collection(name)
            except PyMongoError:  # created concurrently by another collector
                pass
    await db[AGGREGATES].create_index([("tenant_id", 1), ("hour", 1)])
    await db[AGGREGATES].create_index([("updated_at", 1)])
    await db[UNIQUE].create_index([("tenant_id", 1), ("meter", 1), ("service", 1), ("hour", 1)])
    await db[AGGREGATES].create_index([("tenant_id", 1), ("seq", 1), ("hour", 1)])
    await ensure_limit_indexes(db)


async def collector_stats(db: AsyncDatabase[dict[str, Any]]) -> dict[str, int]:
    """The collector's running totals: {"aggregated", "duplicates", "dead_lettered"}.

    Every consumed usage message is counted once in one of the three: a message consumed
    again (a replay, or another event with an already recorded id) counts as a duplicate.
    """
    totals = dict.fromkeys(("aggregated", "duplicates", "dead_lettered"), 0)
    async for doc in db[STATS].find({}):
        for key in totals:
            totals[key] += int(doc.get(key, 0))
    return totals


async def recorded_dead_letters(db: AsyncDatabase[dict[str, Any]], ids: list[str]) -> set[str]:
    """Which dead-letter ids are already recorded (so a replay does not publish them again).
    Raises `DependencyUnavailable` when MongoDB does not answer."""
    if not ids:
        return set()
    with mongo_unavailable("MongoDB (recorded dead letters)"):
        return await _existing_ids(db, PROCESSED, ids, None)


class MongoUsageStore:
    """Writes batches into MongoDB, retrying the whole transaction on transient errors."""

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], retry_max_seconds: float = 5.0,
        clock: Callable[[], datetime] = utc_now, writer: str | None = None,
        attempt_timeout: float = 60.0,
    ) -> None:
        """`clock` stamps the buckets' informative `updated_at` (this host's clock); `writer`
        names this store's counters document in `usage_stats` (default: a new random id);
        `attempt_timeout` bounds each transaction attempt in seconds (PyMongo's client-side
        operation timeout): past it the attempt is abandoned and retried."""
        self.attempt_timeout = attempt_timeout
        self.db = db
        self.writer = writer or f"writer|{uuid.uuid4().hex}"
        self.clock = clock
        self.retry_max_seconds = retry_max_seconds
        self.retries = 0

    async def apply(self, merge: BatchMerge, dead_letter_ids: list[str]) -> ApplyResult:
        """Commit one batch atomically; retries (with capped back-off) until it commits.

        Idempotent: replaying the same batch after a commit only counts duplicates.
        """
        delay, attempt = 0.05, 0
        while True:
            attempt += 1
            try:
                return await self._apply_once(merge, dead_letter_ids, attempt)
            except (PyMongoError, GuardMissed) as exc:
                self.retries += 1
                level = logging.INFO if attempt < 3 else logging.WARNING
                log.log(level, "usage batch transaction retry %d: %s", attempt, str(exc)[:300])
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)

    async def _apply_once(
        self, merge: BatchMerge, dl_ids: list[str], attempt: int
    ) -> ApplyResult:
        client = self.db.client
        # a bound on each attempt: an operation that hangs becomes a retry, never a stall
        with pymongo.timeout(self.attempt_timeout):
            async with client.start_session() as session:
                await session.start_transaction()
                try:
                    result = await self._write(session, merge, dl_ids, attempt)
                except BaseException:
                    await session.abort_transaction()
                    raise
                await self._commit(session)
                return result

    @staticmethod
    async def _commit(session: AsyncClientSession) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                await session.commit_transaction()
                return
            except PyMongoError as exc:
                if exc.has_error_label("UnknownTransactionCommitResult") and (
                    time.monotonic() < deadline
                ):
                    continue  # committing again is safe: the server knows the outcome
                raise

    async def _write(
        self, s: AsyncClientSession, merge: BatchMerge, dl_ids: list[str], attempt: int
    ) -> ApplyResult:
        db, now = self.db, self.clock()
        done = await _existing_ids(db, PROCESSED, list(merge.seen), s)
        fresh = merge.without(done) if done else merge
        seen_dl = await _existing_ids(db, PROCESSED, dl_ids, s) if dl_ids else set()
        new_dl = [i for i in dict.fromkeys(dl_ids) if i not in seen_dl]
        await self._insert_ids(s, [s_.event_id for s_ in fresh.samples] + new_dl)
        windows = await self._write_buckets(s, fresh, now)
        crossed = await update_counters(db, s, fresh.samples, windows, now) if windows else []
        # a message seen again (redelivered, replayed, or the same event id) is a duplicate
        duplicates = merge.duplicates + len(done) + len(dl_ids) - len(new_dl)
        inc = {"aggregated": len(fresh), "duplicates": duplicates, "dead_lettered": len(new_dl)}
        await db[STATS].update_one(
            {"_id": self.writer}, {"$inc": inc, "$set": {"updated_at": now}}, upsert=True,
            session=s,
        )
        return ApplyResult(len(fresh), duplicates, len(new_dl), len(fresh.buckets), attempt,
                           tuple(crossed))

    async def _insert_ids(self, s: AsyncClientSession, ids: list[str]) -> None:
        """Insert `{"_id": id}` into `usage_processed`, as raw `insert` commands of `_CHUNK`
        documents (<= 5.2 MB at the longest event ids): one C-encoded command per chunk
        instead of insert_many's per-document Python. A write error (a duplicate id: the
        transaction is aborted) raises `OperationFailure`, so the transaction is retried."""
        for chunk in _chunks(ids):
            reply = await self.db.command(
                {"insert": PROCESSED, "documents": [{"_id": i} for i in chunk], "ordered": False},
                session=s,
            )
            errors = reply.get("writeErrors") or reply.get("writeConcernError")
            if errors:
                raise OperationFailure(f"processed ids not inserted: {str(errors)[:300]}")

    async def _write_buckets(
        self, s: AsyncClientSession, merge: BatchMerge, now: datetime
    ) -> dict[str, list[Window]]:
        """Write the batch's buckets; the usage limit windows of its tenants that have any."""
        if not merge.buckets:
            return {}
        ids = {bucket_id(k): k for k in merge.buckets}
        seqs, windows = await self._next_sequences(s, {k[0] for k in merge.buckets})
        stored: dict[str, dict[str, Any]] = {}
        raw = self.db[AGGREGATES].with_options(codec_options=RAW_DECIMALS)
        for chunk in _chunks(list(ids), _BUCKET_CHUNK):  # mostly stored: see `_existing_ids`
            async for doc in raw.find({"_id": {"$in": chunk}}, session=s):
                touched = merge.buckets[ids[doc["_id"]]].parts
                stored[doc["_id"]] = decoded(doc, [str(15 * q) for q in touched])
        ops: list[InsertOne[dict[str, Any]] | UpdateOne] = []
        full: list[BucketKey] = []
        for bid, key in ids.items():
            delta = merge.buckets[key]
            old = stored.get(bid)
            if old is None:
                doc = encoded(new_bucket(key, delta, now))
                doc["seq"] = seqs[key[0]]
                ops.append(InsertOne(doc))
            else:
                guard = {"_id": bid, "count": old["count"]}
                try:
                    change = encoded(fold(old, delta, now))
                except UsageSumOverflow:
                    full.append(key)
                    continue
                change["seq"] = seqs[key[0]]
                ops.append(UpdateOne(guard, {"$set": change}))
        if full:
            raise BucketsFull(full)
        result = await self.db[AGGREGATES].bulk_write(ops, ordered=False, session=s)
        if result.matched_count != len(stored):
            raise GuardMissed(f"{len(stored) - result.matched_count} buckets changed meanwhile")
        uniques = [
            UpdateOne(
                {"_id": unique_id(key, rid)},
                {"$setOnInsert": {"tenant_id": key[0], "meter": key[1], "service": key[2],
                                  "hour": key[3], "resource_id": rid},
                 "$addToSet": {"quarters": {"$each": quarters}}},
                upsert=True,
            )
            for key, delta in merge.buckets.items()
            for rid, quarters in delta.resources(key[3]).items()
        ]
        if uniques:
            await self.db[UNIQUE].bulk_write(uniques, ordered=False, session=s)
        return windows

    async def _next_sequences(
        self, s: AsyncClientSession, tenants: set[str]
    ) -> tuple[dict[str, int], dict[str, list[Window]]]:
        """Increment each tenant's usage sequence in this transaction; the new values, and
        the usage limit windows stored on the same documents (adapters/limits.py).

        Two commands whatever the number of tenants. Snapshot isolation makes the read
        values the base of `$inc`: a counter that another transaction moved meanwhile is a
        write conflict, and a counter it created is a duplicate `_id`; either aborts and
        retries this transaction, so values follow commit order.
        """
        coll, ids = self.db[SEQUENCES], sorted(tenants)
        docs = [d async for d in coll.find({"_id": {"$in": ids}}, session=s)]
        found = {d["_id"]: int(d["seq"]) for d in docs}
        windows = {d["_id"]: windows_of(d) for d in docs if d.get("windows")}
        if found:
            await coll.update_many({"_id": {"$in": list(found)}}, {"$inc": {"seq": 1}},
                                   session=s)
        missing = [t for t in ids if t not in found]
        if missing:
            await coll.insert_many([{"_id": t, "seq": 1} for t in missing], ordered=False,
                                   session=s)
        return {t: found.get(t, 0) + 1 for t in ids}, windows
