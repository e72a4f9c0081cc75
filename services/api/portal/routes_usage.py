"""Tenant pages: Usage (range presets, metric cards, charts, usage by service, total
estimated bill) and Billing (payment method on file, Manage payment method, billing email and
notifications) (docs/portal.md, "Tenant pages"). Included by `routes_tenant`.
"""

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from contracts.base import utc_now
from services.api.portal import charts
from services.api.portal import tenant_views as views
from services.api.portal.formatting import date_in, datetime_in, hour_in, locale_of
from services.api.portal.sessions import PortalSession
from services.api.portal.usage_range import ANCHORED_NOTES, LABELS, anchored_window
from services.api.portal.web import PREFIX, CsrfChecked, Session, context, render
from services.api.problems import Problem, forbidden
from services.api.routes import payments_self, reads
from services.api.usage_window import Range
from services.invoicer import api as invoicer

router = APIRouter(include_in_schema=False)
#: Card brands as people write them (Stripe's `card.brand` values).
BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express",
          "discover": "Discover", "diners": "Diners Club", "jcb": "JCB",
          "unionpay": "UnionPay"}


@router.get(f"{PREFIX}/tenants/{{tenant_id}}/usage")
async def usage(request: Request, session: Session, tenant_id: str,
                range: Range = "last_7_days") -> Response:  # noqa: A002 - the query name
    """The Usage page for a preset range (`usage_range.anchored_window`: anchored at the
    newest usage when the preset's interval holds none)."""
    ctx = context(request)
    tenant = await reads.get_tenant(ctx, session.principal, tenant_id)
    first = await reads.get_usage(ctx, session.principal, tenant_id, range_=range)
    window = anchored_window(range, utc_now(), tenant.timezone, first.as_of)
    view = first
    if window.anchored:
        view = await reads.get_usage(ctx, session.principal, tenant_id,
                                     start=window.start, end=window.end)
    locale = locale_of(request)
    cards = views.usage_cards(view, locale)
    slices = views.status_slices(await invoicer.status_counts(ctx.db, tenant_id))
    return render(
        request, "tenant/usage.html", tenant=tenant, view=view, range=range,
        ranges=list(LABELS.items()), note=ANCHORED_NOTES[range] if window.anchored else None,
        period=views.period_days(view.start, view.end, tenant.timezone, locale),
        as_of=_as_of(view.as_of, tenant.timezone, locale), cards=cards,
        bar=charts.bar_chart("Estimated cost by meter", views.cost_bars(cards)),
        pie=charts.pie_chart("Invoices by status", slices), slices=slices,
        services=views.service_rows(view, locale))


def _as_of(at: datetime | None, zone: str, locale: str) -> dict[str, str] | None:
    if at is None:
        return None
    return {"hour": hour_in(at, zone), "day": date_in(at, zone, locale),
            "full": datetime_in(at, zone, locale)}


async def _payment_method(request: Request, session: PortalSession,
                          tenant_id: str) -> dict[str, Any]:
    """`{"text": ..., "error": ...}`: the card on file as "Visa ending in 4242", or why it
    could not be read (the payments endpoint's problem detail)."""
    try:
        found = await payments_self.payment_method(context(request), session.principal,
                                                   tenant_id)
    except Problem as problem:
        if problem.status == 404:
            raise
        return {"text": "Payment method not available",
                "error": problem.detail or problem.title}
    if not found.on_file:
        return {"text": "No payment method on file", "error": None}
    brand = BRANDS.get((found.brand or "").lower(), (found.brand or "Card").title())
    return {"text": f"{brand} ending in {found.last4}", "error": None}


@router.get(f"{PREFIX}/tenants/{{tenant_id}}/billing")
async def billing(request: Request, session: Session, tenant_id: str,
                  setup: str | None = None) -> Response:
    """The Billing page: payment method on file, Manage payment method (the tenant and super
    operators), billing email and email notifications as configured."""
    ctx = context(request)
    tenant = await reads.get_tenant(ctx, session.principal, tenant_id)
    config = await reads.get_billing_config(ctx, session.principal, tenant_id)
    method = await _payment_method(request, session, tenant_id)
    return render(request, "tenant/billing.html", tenant=tenant,
                  settings=config.in_force.settings, method=method,
                  can_manage=session.can_pay,
                  setup=setup if setup in ("returned", "cancelled") else None)


@router.post(f"{PREFIX}/tenants/{{tenant_id}}/billing/payment-method")
async def manage_payment_method(request: Request, session: CsrfChecked,
                                tenant_id: str) -> Response:
    """Manage payment method: a Stripe Checkout Session in setup mode (the API's setup
    endpoint with the session's principal), 303 to its hosted page; a viewer or a read-only
    link session gets 403."""
    if not session.can_pay:
        raise forbidden("only the tenant or a super operator may change the payment method")
    ctx = context(request)
    await reads.get_tenant(ctx, session.principal, tenant_id)
    started = await payments_self.setup_payment_method(
        ctx, request, session.principal, tenant_id, payments_self.SetupBody())
    return RedirectResponse(started.checkout_url, status_code=303)
