"""Administration endpoints: `GET /v1/audit` (docs/api.md, "Audit")."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from services.api.audit import audit_entries
from services.api.auth import allow
from services.api.context import Ctx
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_time_cursor, page
from services.api.principal import Principal

router = APIRouter(tags=["admin"])


class AuditActor(BaseModel):
    """Who: the API key (id, name, role, tenant), or for the invoicer's refusals the actor the
    refused command named (`name` its user id, `key_id` null)."""

    key_id: str | None
    name: str | None
    role: str | None
    tenant_id: str | None = None


class AuditEntry(BaseModel):
    """One audited event: an API write (`source: "api"`) or a configuration command the
    invoicer refused (`source: "invoicer"`)."""

    id: str
    at: datetime
    source: Literal["api", "invoicer"]
    request_id: str | None
    actor: AuditActor
    action: str
    target: str
    tenant_id: str | None
    change: dict[str, Any]


@router.get("/v1/audit", response_model=Page[AuditEntry])
async def audit(
    ctx: Ctx, who: Annotated[Principal, Depends(allow("super"))],
    limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    tenant_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[AuditEntry]:
    """The audit trail, newest first (super): every accepted API write (principal, time,
    request id, action, target, change) and every configuration command the invoicer
    refused. `?tenant_id=` keeps one tenant's entries."""
    entries = await audit_entries(ctx, decode_time_cursor(cursor), limit + 1, tenant_id)
    return page([AuditEntry.model_validate(e) for e in entries], limit,
                lambda e: [e.at, e.id])
