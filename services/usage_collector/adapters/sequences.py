"""Per-tenant usage sequences (`usage_sequences`, docs/usage.md#sequence), moved in the batch
transaction that changes the tenant's buckets."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from services.usage_collector.adapters.limits import Window, windows_of
from services.usage_collector.query import SEQUENCES


async def next_sequences(
    db: AsyncDatabase[dict[str, Any]], s: AsyncClientSession, tenants: set[str]
) -> tuple[dict[str, int], dict[str, list[Window]]]:
    """Increment each tenant's usage sequence in this transaction; the new values, and
    the usage limit windows stored on the same documents (adapters/limits.py).

    Two commands whatever the number of tenants. Snapshot isolation makes the read
    values the base of `$inc`: a counter that another transaction moved meanwhile is a
    write conflict, and a counter it created is a duplicate `_id`; either aborts and
    retries this transaction, so values follow commit order.
    """
    coll, ids = db[SEQUENCES], sorted(tenants)
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
