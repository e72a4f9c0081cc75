"""The configuration commands the invoicer refused, as an audit feed for other services (the
API's `GET /v1/audit`). Read from `invoicer_audit`, records with `decision: "refused"`."""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.invoicer.adapters.store import AUDIT

_SORT = [("when.refused_at", -1), ("_id", -1)]


async def refusals(db: AsyncDatabase[dict[str, Any]], before: tuple[datetime, str] | None,
                   limit: int, tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Up to `limit` refusals, newest first, strictly older than `before` (`(refused_at,
    id)`, the position of the last one a caller has seen), optionally of one tenant. Each:
    `{id, at, actor: {user_id, role}, tenant_id, command, reason, detail}` (`at` tz-aware
    UTC)."""
    query: dict[str, Any] = {"decision": "refused"}
    if tenant_id is not None:
        query["what.tenant_id"] = tenant_id
    if before is not None:
        at, last_id = before
        query["$or"] = [{"when.refused_at": {"$lt": at}},
                        {"when.refused_at": at, "_id": {"$lt": last_id}}]
    docs = await db[AUDIT].find(query).sort(_SORT).limit(limit).to_list()
    return [{
        "id": str(d["_id"]), "at": d["when"]["refused_at"], "actor": dict(d.get("who") or {}),
        "tenant_id": (d.get("what") or {}).get("tenant_id"),
        "command": (d.get("what") or {}).get("command"),
        "reason": (d.get("why") or {}).get("reason"),
        "detail": (d.get("why") or {}).get("detail"),
    } for d in docs]
