"""Tenant pages: Invoices (summary cards, tabs, table), the invoice detail (timeline, lines,
totals, PDF, Pay now); Usage and Billing live in `routes_usage` and are included here
(docs/portal.md, "Tenant pages").

Every page first reads the tenant through `reads.get_tenant` with the session's principal:
a tenant session asking for another tenant's page gets the API's 404, exactly as for a tenant
that does not exist. An invoice shown under `/portal/tenants/{tenant_id}/` must belong to
that tenant (else the same 404 as a missing invoice).
"""

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.api.models_reads import InvoiceDetail, TenantSummary
from services.api.portal import routes_usage
from services.api.portal import tenant_views as views
from services.api.portal.formatting import locale_of
from services.api.portal.sessions import PortalSession
from services.api.portal.web import (
    FLASH_SCOPE_KEY,
    PREFIX,
    CsrfChecked,
    Session,
    context,
    flash,
    render,
)
from services.api.problems import Problem, forbidden, not_found
from services.api.routes import payments_self, reads

router = APIRouter(include_in_schema=False)
router.include_router(routes_usage.router)
PAGE_SIZE = 50
Tab = Literal["all", "unpaid", "paid"]
TABS: tuple[tuple[str, str], ...] = (("all", "All"), ("unpaid", "Unpaid"), ("paid", "Paid"))
#: Roles that may pay an invoice (the pay endpoint's own rule: super or the tenant).
#: What the invoice page says after Pay now (kept as the session's one-time message).
PAY_MESSAGES = {
    "paid": "Payment received. Thank you.",
    "failed": "The payment failed: {reason}. You can pay with another card below.",
    "processing": "A payment of this invoice is already being processed. The invoice shows "
                  "Paid as soon as Stripe confirms it.",
    "already_paid": "This invoice is already paid.",
    "refused": "The payment could not be started: {reason}. Please try again in a moment.",
}


async def tenant_of(request: Request, session: PortalSession, tenant_id: str) -> TenantSummary:
    """The tenant's summary if the session may see it; the API's 404 otherwise."""
    return await reads.get_tenant(context(request), session.principal, tenant_id)


async def invoice_of(request: Request, session: PortalSession, tenant_id: str,
                     number: str) -> tuple[TenantSummary, InvoiceDetail]:
    """The tenant and its invoice `number`; 404 (the API's) when the session may not see the
    tenant, the invoice does not exist or belongs to another tenant."""
    tenant = await tenant_of(request, session, tenant_id)
    invoice = await reads.get_invoice(context(request), session.principal, number)
    if invoice.tenant_id != tenant_id:
        raise not_found(f"invoice {number!r}")
    return tenant, invoice


def detail_path(tenant_id: str, number: str, **query: str) -> str:
    """The invoice detail page's path, with `query` parameters."""
    path = f"{PREFIX}/tenants/{tenant_id}/invoices/{number}"
    return f"{path}?{urlencode(query)}" if query else path


@router.get(f"{PREFIX}/tenants/{{tenant_id}}/invoices")
async def invoices(request: Request, session: Session, tenant_id: str, tab: Tab = "all",
                   cursor: Annotated[str | None, Query(max_length=1000)] = None) -> Response:
    """The Invoices page: balance cards, tabs All / Unpaid / Paid and one page (50) of the
    tab's invoices, newest number last as the API lists them; "Next page" by cursor."""
    ctx = context(request)
    tenant = await tenant_of(request, session, tenant_id)
    balance = await reads.get_balance(ctx, session.principal, tenant_id)
    listed = await reads.list_invoices(ctx, session.principal, limit=PAGE_SIZE, cursor=cursor,
                                       tenant_id=tenant_id, status=tab)
    locale = locale_of(request)
    cards = [
        ("Outstanding balance", views.amounts(balance.outstanding, tenant.currency, locale),
         "card-outstanding"),
        ("Total paid", views.amounts(balance.total_paid, tenant.currency, locale),
         "card-paid"),
        ("Overdue", str(balance.overdue_count), "card-overdue"),
        ("Total invoices", str(balance.total_invoices), "card-total"),
    ]
    next_page = (f"?{urlencode({'tab': tab, 'cursor': listed.next_cursor})}"
                 if listed.next_cursor else None)
    return render(request, "tenant/invoices.html", tenant=tenant, cards=cards, tabs=TABS,
                  tab=tab, invoices=listed.data, next_page=next_page)


@router.get(f"{PREFIX}/tenants/{{tenant_id}}/invoices/{{invoice_number}}")
async def invoice_detail(
    request: Request, session: Session, tenant_id: str, invoice_number: str,
    checkout: Annotated[Literal["returned", "cancelled"] | None, Query()] = None,
) -> Response:
    """An invoice: status, timeline, line items, totals, Download PDF and, for an unpaid
    invoice and a session that may pay, Pay now. What a payment just did is the session's
    one-time message (set by `pay`); `checkout` is where Stripe's hosted page sent the
    browser back. After a return from checkout the page reloads itself every 3 s until the
    invoice is paid (Stripe's webhook may arrive a little later)."""
    tenant, invoice = await invoice_of(request, session, tenant_id, invoice_number)
    locale = locale_of(request)
    unpaid = invoice.status in ("pending_payment", "failed", "overdue")
    return render(
        request, "tenant/invoice.html", tenant=tenant, invoice=invoice,
        timeline=views.timeline(invoice, locale), lines=views.line_rows(invoice, locale),
        period=views.period_days(invoice.period_start, invoice.period_end, invoice.timezone,
                                 locale),
        unpaid=unpaid, can_pay=unpaid and session.can_pay,
        payment_flash=request.scope.get(FLASH_SCOPE_KEY), flash=None, checkout=checkout,
        refresh=checkout == "returned" and unpaid,
        pdf_path=detail_path(tenant_id, invoice.invoice_number) + "/pdf",
        pay_path=detail_path(tenant_id, invoice.invoice_number) + "/pay")


@router.get(f"{PREFIX}/tenants/{{tenant_id}}/invoices/{{invoice_number}}/pdf")
async def invoice_pdf(request: Request, session: Session, tenant_id: str,
                      invoice_number: str) -> Response:
    """The invoice's PDF (the API's), as a download."""
    await invoice_of(request, session, tenant_id, invoice_number)
    pdf = await reads.get_invoice_pdf(context(request), session.principal, invoice_number)
    return Response(pdf.body, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{invoice_number}.pdf"',
        "Cache-Control": "no-store"})


@router.post(f"{PREFIX}/tenants/{{tenant_id}}/invoices/{{invoice_number}}/pay")
async def pay(request: Request, session: CsrfChecked, tenant_id: str,
              invoice_number: str) -> Response:
    """Pay now (`method=auto`: the card on file, else Stripe Checkout) or Pay with another
    card (`method=checkout`), through the API's pay endpoint with the session's principal:
    303 to Stripe's hosted page, else back to the invoice, whose page then says what happened
    (the session's one-time message). A viewer or a read-only link session may not pay
    (403); an already paid invoice or a payment Stripe or the payments service refused to
    start (409, 502) returns with that said."""
    if not session.can_pay:
        raise forbidden("only the tenant or a super operator may pay an invoice")
    await invoice_of(request, session, tenant_id, invoice_number)
    form = await request.form()
    method = form.get("method")
    body = payments_self.PayBody.model_validate(
        {"method": method if method in ("auto", "checkout") else "auto"})
    try:
        outcome = await payments_self.pay_invoice(context(request), request, session.principal,
                                                  invoice_number, body)
    except Problem as problem:
        if problem.status not in (409, 502):
            raise
        _, now = await invoice_of(request, session, tenant_id, invoice_number)
        if now.status == "paid":
            await flash(request, session, "ok", PAY_MESSAGES["already_paid"])
        else:
            reason = (problem.detail or problem.title).rstrip(".")
            await flash(request, session, "error", PAY_MESSAGES["refused"].format(reason=reason))
        return RedirectResponse(detail_path(tenant_id, invoice_number), status_code=303)
    if outcome.outcome == "checkout" and outcome.checkout_url:
        return RedirectResponse(outcome.checkout_url, status_code=303)
    if outcome.outcome == "failed":
        reason = (outcome.detail or "declined").rstrip(".")
        await flash(request, session, "error", PAY_MESSAGES["failed"].format(reason=reason))
    else:
        code = "processing" if outcome.outcome == "checkout" else outcome.outcome
        await flash(request, session, "ok", PAY_MESSAGES[code])
    return RedirectResponse(detail_path(tenant_id, invoice_number), status_code=303)
