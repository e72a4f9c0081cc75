"""Per-tenant usage sequences (`usage_sequences`, docs/usage.md#sequence), moved in the batch
transaction that changes the tenant's buckets."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.usage_collector.adapters.limits import Window, windows_of
from services.usage_collector.query import SEQUENCES

#: Ids per `$in` of counters that mostly exist. A server may compare each document an `$in`
#: finds with the whole list (the embedded development server does, in Python): one `$in`
#: of 1,000 tenants cost ~0.7 ms per document read and ~0.8 ms per document incremented,
#: chunks of this size ~0.1 and ~0.2 ms (docs/usage.md#batch-write-costs).
IN_CHUNK = 25


async def next_sequences(
    db: AsyncDatabase[dict[str, Any]], s: AsyncClientSession, tenants: set[str]
) -> tuple[dict[str, int], dict[str, list[Window]]]:
    """Increment each tenant's usage sequence in this transaction; the new values, and
    the usage limit windows stored on the same documents (adapters/limits.py).

    Reads and increments in `$in` chunks of `IN_CHUNK` tenants, inserts the missing
    counters in one command. Snapshot isolation makes the read values the base of `$inc`:
    a counter that another transaction moved meanwhile is a write conflict, and a counter
    it created is a duplicate `_id`; either aborts and retries this transaction, so values
    follow commit order.
    """
    coll, ids = db[SEQUENCES], sorted(tenants)
    found: dict[str, int] = {}
    windows: dict[str, list[Window]] = {}
    for pos in range(0, len(ids), IN_CHUNK):
        async for d in coll.find({"_id": {"$in": ids[pos : pos + IN_CHUNK]}}, session=s):
            found[d["_id"]] = int(d["seq"])
            if d.get("windows"):
                windows[d["_id"]] = windows_of(d)
    present = list(found)
    for pos in range(0, len(present), IN_CHUNK):
        await coll.update_many({"_id": {"$in": present[pos : pos + IN_CHUNK]}},
                               {"$inc": {"seq": 1}}, session=s)
    missing = [t for t in ids if t not in found]
    if missing:
        await coll.insert_many([{"_id": t, "seq": 1} for t in missing], ordered=False,
                               session=s)
    return {t: found.get(t, 0) + 1 for t in ids}, windows
