"""`usage_processed`: one document per dead-lettered message, and event ids of earlier versions.

`_id` "dl|{topic}|{partition}|{offset}" records that a message was dead-lettered (so a
replay neither publishes nor counts it again). Aggregated events are recorded compactly in
`usage_seen_ids` (adapters/seen_ids.py); a deployment that ran an earlier version may still
hold one document per event here (`_id` "{source}/{id}"), which the store keeps looking up
when `has_event_ids` finds any.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from services.common.mongo_errors import mongo_unavailable

PROCESSED = "usage_processed"
_CHUNK = 5_000
#: `$in` reads of ids that are probably stored (see `existing_ids`).
_SMALL_CHUNK = 100

Db = AsyncDatabase[dict[str, Any]]


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    """The processed-record `_id` of a dead-lettered message."""
    return f"dl|{topic}|{partition}|{offset}"


def chunks(items: list[str], size: int = _CHUNK) -> Iterable[list[str]]:
    """`items` in consecutive slices of at most `size`."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def existing_ids(
    db: Db, name: str, ids: list[str], session: AsyncClientSession | None
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


async def raw_write(db: Db, s: AsyncClientSession, command: dict[str, Any],
                    what: str) -> dict[str, Any]:
    """Send one raw write command (`insert`, `update`) in session `s` and return its reply.
    A write error or write-concern error raises `OperationFailure` ("{what}: {errors}"), so
    the transaction is aborted and retried."""
    reply = await db.command(command, session=s)
    errors = reply.get("writeErrors") or reply.get("writeConcernError")
    if errors:
        raise OperationFailure(f"{what}: {str(errors)[:300]}")
    return reply


async def insert_ids(db: Db, s: AsyncClientSession, ids: list[str]) -> None:
    """Insert `{"_id": id}` into `usage_processed`, as raw `insert` commands of `_CHUNK`
    documents (one C-encoded command per chunk instead of insert_many's per-document
    Python). A write error (a duplicate id: the transaction is aborted) raises
    `OperationFailure`, so the transaction is retried."""
    for chunk in chunks(ids):
        await raw_write(db, s, {"insert": PROCESSED, "documents": [{"_id": i} for i in chunk],
                                "ordered": False}, "processed ids not inserted")


async def has_event_ids(db: Db) -> bool:
    """Whether `usage_processed` holds any event id of an earlier version (any `_id` outside
    the "dl|" range of dead-letter records)."""
    outside = {"$or": [{"_id": {"$lt": "dl|"}}, {"_id": {"$gte": "dl}"}}]}
    return await db[PROCESSED].find_one(outside, projection={"_id": 1}) is not None


async def recorded_dead_letters(db: Db, ids: list[str]) -> set[str]:
    """Which dead-letter ids are already recorded (so a replay does not publish them again).
    Raises `DependencyUnavailable` when MongoDB does not answer."""
    if not ids:
        return set()
    with mongo_unavailable("MongoDB (recorded dead letters)"):
        return await existing_ids(db, PROCESSED, ids, None)
