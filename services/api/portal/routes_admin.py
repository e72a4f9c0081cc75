"""The admin console: Tenants (list, detail with the Billing tab) and Administration ->
Billing (docs/portal.md, "Admin console")."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.api.portal.web import PREFIX, Operator, render

router = APIRouter(include_in_schema=False)


@router.get(f"{PREFIX}/admin/tenants")
async def tenants(request: Request, session: Operator) -> Response:
    """The tenant list."""
    return render(request, "admin/tenants.html")
