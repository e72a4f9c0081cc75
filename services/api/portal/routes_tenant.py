"""Tenant pages: Invoices (summary cards, tabs, table, detail with timeline, PDF and Pay now),
Usage and Billing (docs/portal.md, "Tenant pages")."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.api.portal.web import PREFIX, Session, render
from services.api.routes.reads import get_tenant

router = APIRouter(include_in_schema=False)


@router.get(f"{PREFIX}/tenants/{{tenant_id}}/invoices")
async def invoices(request: Request, session: Session, tenant_id: str) -> Response:
    """The tenant's invoices."""
    from services.api.context import context_of

    tenant = await get_tenant(context_of(request), session.principal, tenant_id)
    return render(request, "tenant/invoices.html", tenant=tenant)
