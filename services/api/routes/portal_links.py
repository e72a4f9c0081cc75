"""`POST /v1/tenants/{tenant_id}/portal-sessions`: a single-use portal link for a tenant
(docs/portal.md, "Signing in"), like Stripe's billing portal sessions."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from services.api.audit import record_write
from services.api.auth import allow
from services.api.context import Ctx
from services.api.portal.sessions import create_link
from services.api.principal import Principal
from services.api.tenants import tenant_config

router = APIRouter(tags=["portal"])


class PortalSessionView(BaseModel):
    """A portal link: `url` opens a session of `tenant_id` in a browser once, until
    `expires_at` (one hour after it was made)."""

    tenant_id: str
    url: str
    expires_at: datetime


@router.post("/v1/tenants/{tenant_id}/portal-sessions", status_code=201,
             summary="Create a portal link")
async def create_portal_session(
    ctx: Ctx, request: Request,
    who: Annotated[Principal, Depends(allow("super", "viewer"))], tenant_id: str,
) -> PortalSessionView:
    """A single-use link to the tenant's portal pages, valid for one hour (super or viewer).
    404 for an unknown tenant. The link is audited; send it to the tenant. Its address is
    `BILLING_PORTAL_URL` when set, else the URL this request reached. A link made with a
    `viewer` key opens a read-only session: the tenant's pages without Pay now or Manage
    payment method."""
    await tenant_config(ctx, who, tenant_id)
    link = await create_link(ctx.db, ctx.settings, tenant_id, who.actor_id,
                             base_url=ctx.settings.portal_url or str(request.base_url),
                             read_only=who.role != "super")
    await record_write(ctx, request, who, "portal_session.create", f"tenant:{tenant_id}",
                       {"expires_at": link.expires_at.isoformat()})
    return PortalSessionView(tenant_id=tenant_id, url=link.url, expires_at=link.expires_at)
