"""The read endpoints: tenants, billing configuration, invoices (JSON and PDF), balance, usage
and the dashboard (docs/api-endpoints.md).

Who may read what: `super` and `viewer` read everything; a `tenant` key reads only its own
tenant, its invoices, balance and usage, and gets 404 for anything of another tenant exactly as
for something that does not exist (`check_tenant`). The views themselves live in the invoicer
(`services.invoicer.api`); this module checks access, parses parameters and shapes responses.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from contracts.base import utc_now
from services.api import reads_convert as convert
from services.api.auth import allow, check_tenant
from services.api.context import Ctx
from services.api.ingest_counts import accepted_in_periods
from services.api.models_reads import (
    BalanceView,
    BillingConfigView,
    DashboardView,
    InvoiceDetail,
    InvoiceSummary,
    TenantSummary,
    UsageView,
)
from services.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, page
from services.api.principal import Principal
from services.api.problems import Problem, not_found
from services.api.tenants import tenant_config
from services.api.usage_window import BadWindow, Range, usage_window
from services.common.invoice_document import seller_of
from services.invoicer import api as invoicer
from services.usage_collector import api as usage

router = APIRouter(tags=["reads"])

Staff = Annotated[Principal, Depends(allow("super", "viewer"))]
Reader = Annotated[Principal, Depends(allow("super", "viewer", "tenant"))]


def _after(cursor: str | None) -> str | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    if len(position) != 1 or not isinstance(position[0], str):
        raise Problem(400, "Bad Request", "the cursor does not belong to this list")
    return position[0]


async def _tenant(ctx: Ctx, who: Principal, tenant_id: str) -> TenantSummary:
    """The tenant's summary, after the access check; 404 when it has no configuration."""
    check_tenant(who, tenant_id)
    found = await invoicer.tenant_summary(ctx.db, tenant_id)
    if found is None:
        raise not_found(f"tenant {tenant_id!r}")
    return convert.tenant_summary(found)


@router.get("/v1/tenants", summary="List tenants")
async def list_tenants(
    ctx: Ctx, who: Staff, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    q: Annotated[str | None, Query(max_length=200,
                                   description="substring of the id or name")] = None,
) -> Page[TenantSummary]:
    """Tenants by id, with their currency, schedule, outstanding amounts and overdue count."""
    rows = await invoicer.tenant_rows(ctx.db, after=_after(cursor), limit=limit + 1, q=q)
    return page([convert.tenant_summary(r) for r in rows], limit,
                lambda t: [t.tenant_id])


@router.get("/v1/tenants/{tenant_id}", summary="One tenant")
async def get_tenant(ctx: Ctx, who: Reader, tenant_id: str) -> TenantSummary:
    """A tenant's summary (a tenant key: its own only)."""
    return await _tenant(ctx, who, tenant_id)


@router.get("/v1/tenants/{tenant_id}/billing-config", summary="Billing configuration")
async def get_billing_config(ctx: Ctx, who: Reader, tenant_id: str) -> BillingConfigView:
    """The version in force now, every version, and the outcomes of recent submissions by
    submission id (the id `PUT` answers). A tenant key does not see who submitted versions nor
    the submissions' outcomes (operators' keys and refusals)."""
    check_tenant(who, tenant_id)
    found = await invoicer.billing_config(ctx.db, tenant_id, utc_now())
    if found is None:
        raise not_found(f"tenant {tenant_id!r}")
    view = BillingConfigView.model_validate(found)
    if who.role == "tenant":
        view = view.model_copy(update={
            "history": [row.model_copy(update={"actor": None}) for row in view.history],
            "submissions": {}})
    return view


@router.get("/v1/invoices", summary="List invoices")
async def list_invoices(
    ctx: Ctx, who: Reader, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None,
    tenant_id: str | None = None,
    status: Annotated[Literal["all", "unpaid", "paid"], Query(
        description="unpaid: pending_payment, failed or overdue")] = "all",
) -> Page[InvoiceSummary]:
    """Invoices by number; a tenant key sees its own (another tenant's id: 404)."""
    if who.role == "tenant":
        assert who.tenant_id is not None
        if tenant_id is not None:
            check_tenant(who, tenant_id)
        tenant_id = who.tenant_id
    docs = await invoicer.invoice_rows(ctx.db, tenant_id=tenant_id, status=status,
                                       after=_after(cursor), limit=limit + 1)
    return page([convert.invoice_summary(d) for d in docs], limit,
                lambda i: [i.invoice_number])


async def _invoice(ctx: Ctx, who: Principal, number: str) -> dict[str, Any]:
    """The invoice numbered `number`; 404 when there is none or it is another tenant's."""
    doc = await invoicer.invoice(ctx.db, number)
    if doc is None or (who.role == "tenant" and doc["tenant_id"] != who.tenant_id):
        raise not_found(f"invoice {number!r}")
    return doc


@router.get("/v1/invoices/{invoice_number}", summary="One invoice")
async def get_invoice(ctx: Ctx, who: Reader, invoice_number: str) -> InvoiceDetail:
    """Lines, totals, status, timeline and payment of one invoice."""
    return convert.invoice_detail(await _invoice(ctx, who, invoice_number))


@router.get("/v1/invoices/{invoice_number}/pdf", summary="Invoice PDF",
            response_class=Response,
            responses={200: {"content": {"application/pdf": {}},
                             "description": "the invoice as `billing invoices pdf` renders it"}})
async def get_invoice_pdf(ctx: Ctx, who: Reader, invoice_number: str) -> Response:
    """The invoice as a PDF (current status and payment)."""
    doc = await _invoice(ctx, who, invoice_number)
    body = await invoicer.invoice_pdf(doc, ctx.db, seller_of(ctx.settings))
    return Response(body, media_type="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{doc["invoice_number"]}.pdf"'})


@router.get("/v1/tenants/{tenant_id}/balance", summary="Balance")
async def get_balance(ctx: Ctx, who: Reader, tenant_id: str) -> BalanceView:
    """Outstanding, total paid (net of refunds), overdue count and invoice count."""
    await tenant_config(ctx, who, tenant_id)
    return convert.balance_view(tenant_id, await invoicer.balance(ctx.db, tenant_id))


@router.get("/v1/tenants/{tenant_id}/usage", summary="Usage and estimated cost")
async def get_usage(
    ctx: Ctx, who: Reader, tenant_id: str, range_: Annotated[Range | None, Query(
        alias="range", description="last_7_days | last_month | last_90_days")] = None,
    start: Annotated[datetime | None, Query(alias="from", description="ISO 8601")] = None,
    end: Annotated[datetime | None, Query(alias="to", description="ISO 8601")] = None,
) -> UsageView:
    """Usage per meter and service over the interval, priced as the invoice would price it."""
    config = await tenant_config(ctx, who, tenant_id)
    now = utc_now()
    try:
        window = usage_window(range_, start, end, now, config.timezone)
    except BadWindow as exc:
        raise Problem(422, "Unprocessable Content", str(exc), errors=[
            {"loc": ["query", exc.param], "msg": str(exc), "type": "value_error"}]) from exc
    view = await invoicer.usage_estimate(ctx.db, tenant_id, *window, now=now)
    if view is None:
        raise not_found(f"tenant {tenant_id!r}")
    return convert.usage_view(view)


@router.get("/v1/dashboard", summary="Dashboard")
async def get_dashboard(ctx: Ctx, who: Staff) -> DashboardView:
    """Tenant and invoice counts, this month's revenue, open billing errors and the usage
    reconciliation per tenant: the invoicer's view, with the events this API accepted for
    each period (`ingest_counts.accepted_in_periods`, by UTC day, in one query); and the
    tenants at or over 80 % of a limit (the usage collector's counters, docs/limits.md)."""
    view = await invoicer.dashboard_view(ctx.db, utc_now())
    parts = [(row["tenant_id"], part) for row in view["reconciliation"]
             for part in (row["current"], row["last_invoiced"]) if part is not None]
    counts = await accepted_in_periods(
        ctx.db, [(tenant, p["period_start"], p["period_end"]) for tenant, p in parts])
    for (_, part), events in zip(parts, counts, strict=True):
        part["events_accepted_by_api"] = events
    dashboard = convert.dashboard_view(view)
    dashboard.tenants_at_limits = convert.tenants_at_limits(
        await usage.tenants_at_limits(ctx.db, utc_now()))
    return dashboard
