"""The admin console (operators: super and viewer; a tenant session gets 404 pages):
Tenants (a searchable list; a tenant's Billing tab, `admin_tenant`, with its actions,
`admin_actions`) and Administration -> Billing (the dashboard). docs/portal.md, "Admin
console".

Every page calls the API's own route functions with the session's principal, so the portal
shows what the API answers and applies its access rules.
"""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from services.api.portal import admin_actions, admin_plans, admin_tenant
from services.api.portal.admin_views import reconciliation_rows
from services.api.portal.web import PREFIX, Operator, context, render
from services.api.routes import operations, reads

router = APIRouter(include_in_schema=False)
router.include_router(admin_tenant.router)
router.include_router(admin_actions.router)
router.include_router(admin_plans.router)
#: Tenants per page of the list.
PAGE_SIZE = 50


@router.get(f"{PREFIX}/admin/tenants")
async def tenants(
    request: Request, session: Operator,
    q: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """The tenant list (`reads.list_tenants`): `q` keeps tenants whose id or name contains
    it; `cursor` is the next page's position from the previous page."""
    query = (q or "").strip() or None
    found = await reads.list_tenants(context(request), session.principal, limit=PAGE_SIZE,
                                     cursor=cursor or None, q=query)
    return render(request, "admin/tenants.html", tenants=found.data, q=query or "",
                  next_cursor=found.next_cursor)


@router.get(f"{PREFIX}/admin/billing")
async def billing(request: Request, session: Operator) -> Response:
    """Administration -> Billing: the dashboard's counts and revenue over all tenants
    (`reads.get_dashboard`), the usage reconciliation (periods in each tenant's zone), and
    the dead letters of the last 24 hours (`operations.list_dead_letters`)."""
    ctx = context(request)
    dashboard = await reads.get_dashboard(ctx, session.principal)
    letters = await operations.list_dead_letters(ctx, session.principal, limit=200,
                                                 cursor=None, since=None)
    zones: dict[str, str] = {}
    cursor = None
    while True:  # every tenant's time zone, for the reconciliation's periods
        found = await reads.list_tenants(ctx, session.principal, limit=200, cursor=cursor,
                                         q=None)
        zones.update((t.tenant_id, t.timezone) for t in found.data)
        if (cursor := found.next_cursor) is None:
            break
    return render(request, "admin/billing.html", dashboard=dashboard,
                  reconciliation=reconciliation_rows(dashboard.reconciliation, zones),
                  letters=letters.data, more_letters=letters.next_cursor is not None)
