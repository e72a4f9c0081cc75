"""The audit trail of API writes (collection `api_audit`; docs/api.md, "Audit").

Every write the API accepts is recorded: principal (key id, name, role), time, request id,
action, target and what changed. `GET /v1/audit` (super) lists these records together with the
commands the invoicer refused (`invoicer_audit`), newest first.
"""

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from services.api.context import ApiContext
from services.api.pagination import after_filter
from services.api.principal import Principal
from services.api.scope import request_id_of
from services.invoicer.api import refusals

COLLECTION = "api_audit"
_SORT = [("at", -1), ("_id", -1)]
_state = {"ns": 0}


def _next_record_id() -> str:
    """A new audit record id that sorts after every id this process made before:
    `audit_{ns:020d}{random}` with `ns` the wall clock in nanoseconds, raised to one past the
    previous id's when the clock has not moved on. MongoDB keeps `at` to the millisecond, so
    records written in the same millisecond tie on `at` and the listing falls back to the id;
    a time-ordered id keeps them newest first (records of two API processes in the same
    millisecond are ordered by their clocks)."""
    ns = max(time.time_ns(), _state["ns"] + 1)
    _state["ns"] = ns
    return f"audit_{ns:020d}{uuid.uuid4().hex[:12]}"


def _tenant_of(target: str, change: dict[str, Any]) -> str | None:
    if target.startswith("tenant:"):
        return target.removeprefix("tenant:")
    tenant = change.get("tenant_id")
    return str(tenant) if tenant else None


async def record_write(ctx: ApiContext, request: Request, principal: Principal, action: str,
                       target: str, change: dict[str, Any], *,
                       tenant_id: str | None = None, record_id: str | None = None) -> str:
    """Record one accepted write; returns the audit record id. `action` is a dotted verb
    (`billing_config.submit`, `credit.grant`, `coupon.create`, `coupon.redeem`,
    `payment.record`), `target` what it acts on (`tenant:acme`, `invoice:INV-2013-0001`,
    `coupon:CODE`), `change` the JSON-able values written (never secrets). The record's
    tenant (for `?tenant_id=`) is `tenant_id`, else the target's when it is `tenant:...`, else
    `change["tenant_id"]`. `record_id` (default: a new time-ordered id) makes the record
    idempotent: a second record with the same id raises pymongo's `DuplicateKeyError`."""
    record_id = record_id or _next_record_id()
    await ctx.db[COLLECTION].insert_one({
        "_id": record_id, "at": datetime.now(UTC), "request_id": request_id_of(request.scope),
        "actor": {"key_id": principal.key_id, "name": principal.name, "role": principal.role,
                  "tenant_id": principal.tenant_id},
        "action": action, "target": target, "tenant_id": tenant_id or _tenant_of(target, change),
        "change": change, "method": request.method, "path": request.url.path,
    })
    return record_id


async def ensure_indexes(ctx: ApiContext) -> None:
    """The indexes the audit listing sorts and filters by."""
    await ctx.db[COLLECTION].create_index(_SORT)
    await ctx.db[COLLECTION].create_index([("tenant_id", 1), *_SORT])


async def _writes(ctx: ApiContext, before: tuple[datetime, str] | None, limit: int,
                  tenant_id: str | None) -> list[dict[str, Any]]:
    query: dict[str, Any] = {}
    if tenant_id is not None:
        query["tenant_id"] = tenant_id
    query.update(after_filter(_SORT, before))
    docs = await ctx.db[COLLECTION].find(query).sort(_SORT).limit(limit).to_list()
    return [{"id": d["_id"], "at": d["at"], "source": "api", "request_id": d.get("request_id"),
             "actor": d["actor"], "action": d["action"], "target": d["target"],
             "tenant_id": d.get("tenant_id"), "change": d.get("change") or {}} for d in docs]


#: refused command type -> the noun of its audit action
_REFUSED_NOUNS = {"BillingConfigSubmitted": "billing_config", "CreditGranted": "credit",
                  "CouponCreated": "coupon", "CouponRedeemed": "coupon_redemption"}


async def audit_entries(ctx: ApiContext, before: tuple[datetime, str] | None, limit: int,
                        tenant_id: str | None = None) -> list[dict[str, Any]]:
    """Up to `limit` entries, newest first, older than `before` (`(at, id)` of the last entry
    seen): the API's writes (`source: "api"`) merged with the invoicer's refusals
    (`source: "invoicer"`, `action` `billing_config.refused`, `credit.refused`,
    `coupon.refused` or `coupon_redemption.refused` by the refused command, `change` holding
    the command's type and the reason)."""
    writes = await _writes(ctx, before, limit, tenant_id)
    refused = [{
        "id": r["id"], "at": r["at"], "source": "invoicer", "request_id": None,
        "actor": {"key_id": None, "name": r["actor"].get("user_id"),
                  "role": r["actor"].get("role"), "tenant_id": None},
        "action": f"{_REFUSED_NOUNS.get(r['command'] or '', 'command')}.refused",
        "target": f"tenant:{r['tenant_id']}" if r["tenant_id"] else f"coupon:{r['code']}",
        "tenant_id": r["tenant_id"],
        "change": {"command": r["command"], "reason": r["reason"], "detail": r["detail"]},
    } for r in await refusals(ctx.db, before, limit, tenant_id)]
    merged = sorted(writes + refused, key=lambda e: (e["at"], e["id"]), reverse=True)
    return merged[:limit]
