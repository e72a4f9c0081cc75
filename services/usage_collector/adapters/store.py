"""MongoDB side of the collector: one transaction per batch, exact under any failure.

Collections (owned by the usage collector):
- `usage_seen_ids`: the ids of aggregated events, compactly (adapters/seen_ids.py,
  docs/usage.md#de-duplication), with no time window.
- `usage_processed`: "dl|{topic}|{partition}|{offset}" of every dead-lettered message, and
  the event ids an earlier version recorded one per document (adapters/processed.py).
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

No document is written by every transaction: seen ids, buckets, sequences and limits are
per tenant (collectors own tenants through the partitions keyed by tenant), counters per
writer. `apply` is atomic: seen ids, bucket changes and counters commit together or not at
all, so a crash at any point loses nothing and counts nothing twice; each touched tenant's
sequence counter moves in the same transaction. Existing buckets are read, then replaced
whole by `_id` inside the transaction: snapshot isolation makes a bucket that another
transaction changed after this one's first read a write conflict (the rule the sequence
counters rely on), so no guard is needed in the filter, where it would take the server's
slow path (docs/usage.md#batch-write-costs). Seen-id leaves are rewritten with their read
counts as guards. A concurrent change (another collector during a rebalance) makes a guard
miss, a duplicate insert or a write conflict abort, and the whole transaction is retried.

Per-event client CPU is kept low: seen ids go in raw write commands and bucket decimals are
converted by `adapters/decimal128.py` rather than bson's bit-by-bit Python.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pymongo
from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from contracts.base import utc_now
from services.usage_collector.acceptance import Sample
from services.usage_collector.adapters.decimal128 import RAW_DECIMALS, decoded, encoded
from services.usage_collector.adapters.limits import Window, ensure_limit_indexes, update_counters
from services.usage_collector.adapters.processed import (
    PROCESSED,
    chunks,
    existing_ids,
    has_event_ids,
    insert_ids,
)
from services.usage_collector.adapters.seen_ids import (
    DEFAULT_CAP,
    SEEN,
    GuardMissed,
    SeenIds,
)
from services.usage_collector.adapters.sequences import IN_CHUNK, next_sequences
from services.usage_collector.buckets import BucketKey, bucket_id, unique_id
from services.usage_collector.merge import BatchMerge, fold, new_bucket, rewritten
from services.usage_collector.query import AGGREGATES, SEQUENCES, UNIQUE
from services.usage_collector.totals import UsageSumOverflow

log = logging.getLogger(__name__)

STATS = "usage_stats"
#: `$in` reads of buckets, which are mostly stored already: small, since a server may compare
#: each document found with the whole list (processed.existing_ids, sequences.IN_CHUNK).
_BUCKET_CHUNK = IN_CHUNK


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
    #: The newly aggregated samples (for the freshness metric).
    samples: Sequence[Sample] = ()
    #: When the transaction committed (`time.time()`, seconds since the epoch).
    committed_at: float = 0.0
    #: Documents inserted, updated or upserted by the transaction, per collection.
    written: tuple[tuple[str, int], ...] = ()


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """Create the collections and the indexes the read side uses; idempotent."""
    existing = set(await db.list_collection_names())
    for name in (PROCESSED, SEEN, AGGREGATES, UNIQUE, STATS, SEQUENCES):
        if name not in existing:
            try:
                await db.create_collection(name)
            except PyMongoError:  # created concurrently by another collector
                pass
    await db[AGGREGATES].create_index([("tenant_id", 1), ("hour", 1)])
    await db[AGGREGATES].create_index([("hour", 1)])  # one period's usage of every tenant
    await db[UNIQUE].create_index([("tenant_id", 1), ("meter", 1), ("service", 1), ("hour", 1)])
    await db[UNIQUE].create_index([("hour", 1)])
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


class MongoUsageStore:
    """Writes batches into MongoDB, retrying the whole transaction on transient errors."""

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], retry_max_seconds: float = 5.0,
        clock: Callable[[], datetime] = utc_now, writer: str | None = None,
        attempt_timeout: float = 60.0, seen_cap: int = DEFAULT_CAP,
    ) -> None:
        """`clock` stamps the buckets' informative `updated_at` (this host's clock); `writer`
        names this store's counters document in `usage_stats` (default: a new random id);
        `attempt_timeout` bounds each transaction attempt in seconds (PyMongo's client-side
        operation timeout): past it the attempt is abandoned and retried; `seen_cap` is the
        number of event ids per seen-id document before it splits."""
        self.seen = SeenIds(seen_cap)
        #: Whether `usage_processed` holds event ids of an earlier version (probed once).
        self.legacy_ids: bool | None = None
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
        while self.legacy_ids is None:
            try:
                self.legacy_ids = await has_event_ids(self.db)
            except PyMongoError as exc:
                log.info("usage store start-up probe retry: %s", str(exc)[:300])
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_seconds)
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
                return replace(result, committed_at=time.time())

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
        found = await self.seen.find(db, s, merge.samples)
        done = found.done
        legacy: set[str] = set()
        if self.legacy_ids:
            rest = [e for e in merge.seen if e not in done]
            legacy = await existing_ids(db, PROCESSED, rest, s)
            done = done | legacy
        fresh = merge.without(done) if done else merge
        seen_dl = await existing_ids(db, PROCESSED, dl_ids, s) if dl_ids else set()
        new_dl = [i for i in dict.fromkeys(dl_ids) if i not in seen_dl]
        seen_docs = await self.seen.add(db, s, found, legacy)
        await insert_ids(db, s, new_dl)
        windows, written = await self._write_buckets(s, fresh, now)
        crossed = await update_counters(db, s, fresh.samples, windows, now) if windows else []
        # a message seen again (redelivered, replayed, or the same event id) is a duplicate
        duplicates = merge.duplicates + len(done) + len(dl_ids) - len(new_dl)
        inc = {"aggregated": len(fresh), "duplicates": duplicates, "dead_lettered": len(new_dl)}
        await db[STATS].update_one(
            {"_id": self.writer}, {"$inc": inc, "$set": {"updated_at": now}}, upsert=True,
            session=s,
        )
        written.update({SEEN: seen_docs, PROCESSED: len(new_dl), STATS: 1})
        return ApplyResult(len(fresh), duplicates, len(new_dl), len(fresh.buckets), attempt,
                           tuple(crossed), fresh.samples,
                           written=tuple((k, v) for k, v in written.items() if v))

    async def _write_buckets(
        self, s: AsyncClientSession, merge: BatchMerge, now: datetime
    ) -> tuple[dict[str, list[Window]], dict[str, int]]:
        """Write the batch's buckets; the usage limit windows of its tenants that have any,
        and the documents written per collection."""
        if not merge.buckets:
            return {}, {}
        ids = {bucket_id(k): k for k in merge.buckets}
        seqs, windows = await next_sequences(self.db, s, {k[0] for k in merge.buckets})
        stored: dict[str, dict[str, Any]] = {}
        raw = self.db[AGGREGATES].with_options(codec_options=RAW_DECIMALS)
        for chunk in chunks(list(ids), _BUCKET_CHUNK):  # mostly stored: see `existing_ids`
            async for doc in raw.find({"_id": {"$in": chunk}}, session=s):
                touched = merge.buckets[ids[doc["_id"]]].parts
                stored[doc["_id"]] = decoded(doc, [str(15 * q) for q in touched])
        ops: list[InsertOne[dict[str, Any]] | ReplaceOne[dict[str, Any]]] = []
        full: list[BucketKey] = []
        for bid, key in ids.items():
            delta = merge.buckets[key]
            old = stored.get(bid)
            if old is None:
                doc = encoded(new_bucket(key, delta, now))
                doc["seq"] = seqs[key[0]]
                ops.append(InsertOne(doc))
            else:
                try:
                    change = encoded(fold(old, delta, now))
                except UsageSumOverflow:
                    full.append(key)
                    continue
                change["seq"] = seqs[key[0]]
                ops.append(ReplaceOne({"_id": bid}, rewritten(old, change)))
        if full:
            raise BucketsFull(full)
        result = await self.db[AGGREGATES].bulk_write(ops, ordered=False, session=s)
        if result.matched_count != len(stored):
            raise GuardMissed(f"{len(stored) - result.matched_count} buckets vanished meanwhile")
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
        written = {AGGREGATES: result.inserted_count + result.modified_count,
                   SEQUENCES: len(seqs)}
        if uniques:
            unique = await self.db[UNIQUE].bulk_write(uniques, ordered=False, session=s)
            written[UNIQUE] = unique.upserted_count + unique.modified_count
        return windows, written
