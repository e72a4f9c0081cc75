"""The tenant's Plan page (docs/portal.md, "Plans and subscription"): the subscription (or a
Checkout waiting for Stripe), the catalog's plans as cards with Select plan / Switch to this
plan, Cancel subscription, and the Billing details form that must be saved before a plan can
be chosen; plus Update payment details on the Billing page (Stripe's billing portal).

Every handler calls the API's own route functions (`routes.subscriptions`) with the session's
principal, so the API's access rules apply: another tenant's page is the API's 404. Read-only
link sessions and viewers see the page without forms (`PortalSession.can_pay`). After a form
the page answers 303 (redirect after POST) with a one-time message.
"""

import re
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from contracts.base import utc_now
from services.api.auth import check_tenant
from services.api.portal import plan_views as views
from services.api.portal.formatting import date_in, locale_of
from services.api.portal.sessions import PortalSession
from services.api.portal.web import PREFIX, CsrfChecked, Session, context, flash, render
from services.api.problems import Problem, forbidden
from services.api.routes import subscriptions as api
from services.invoicer import api as invoicer
from services.payments.api import BillingCustomerDetails

router = APIRouter(include_in_schema=False)
#: The billing details form's fields, in page order: (name, label, input type, autocomplete).
FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("name", "Name", "text", "organization"),
    ("email", "Billing email", "email", "email"),
    ("address_line1", "Address line 1", "text", "address-line1"),
    ("address_line2", "Address line 2 (optional)", "text", "address-line2"),
    ("city", "City", "text", "address-level2"),
    ("postal_code", "Postal code", "text", "postal-code"),
    ("state", "State or region (optional)", "text", "address-level1"),
    ("country", "Country (two-letter code, e.g. DE)", "text", "country"),
    ("tax_id", "Tax id (optional)", "text", "off"),
)
#: A plan version as the select-plan form posts it: 1 to 9 ASCII digits (`isdigit` would
#: also take "²" or other scripts' digits, which `int` then refuses).
VERSION = re.compile(r"[0-9]{1,9}")
#: When the browser came back from Checkout, as the reload carries it (Unix seconds).
SINCE = re.compile(r"[0-9]{1,12}")
MESSAGES = {
    "saved": "Billing details saved.",
    "start": "Subscription to {plan} requested. It shows here in a moment.",
    "change": "Plan change to {plan} requested. It shows here in a moment.",
    "cancel": "Cancellation requested: the subscription ends at the end of the current "
              "period.",
    "refused": "That did not work: {reason}.",
}


def plan_path(tenant_id: str) -> str:
    """The Plan page's path."""
    return f"{PREFIX}/tenants/{tenant_id}/plan"


async def _page(request: Request, session: PortalSession, tenant_id: str, *,
                values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                checkout: str | None = None, since: str | None = None,
                status_code: int = 200) -> Response:
    ctx = context(request)
    check_tenant(session.principal, tenant_id)
    config = await invoicer.current_config(ctx.db, tenant_id)
    zone = config.timezone if config is not None else "UTC"
    locale = locale_of(request)
    try:
        customer: BillingCustomerDetails | None = await api.get_billing_customer(
            ctx, session.principal, tenant_id)
    except Problem as problem:
        if problem.status != 404:
            raise
        customer = None
    state = await api.subscription_state(ctx, tenant_id)
    active = state is not None and state.status == "active"
    current = None
    if active and state is not None and state.plan_code and state.plan_version:
        found = await invoicer.get_plan(ctx.db, state.plan_code, state.plan_version)
        current = (found.version, found.plan) if found else None
    period_end = None  # the current period's last day
    if active and state and state.current_period_start and state.current_period_end:
        period_end = views.period_days(state.current_period_start, state.current_period_end,
                                       zone, locale)[1]
    waits = state is not None and (state.cancel_at_period_end or bool(state.scheduled_plan_code))
    plans = [(p.version, p.plan) for p in await invoicer.list_plans(ctx.db)]
    cards = views.plan_cards(plans, current, period_end, locale, can_change=not waits)
    wait, refresh_url = None, None
    if checkout == "returned" and not active:
        now = int(utc_now().timestamp())
        back = min(int(since), now) if since and SINCE.fullmatch(since) else now
        wait = views.checkout_wait(timedelta(seconds=now - back),
                                   pending=bool(state and state.pending_checkout_plan))
        refresh_url = f"{plan_path(tenant_id)}?checkout=returned&since={back}"
    shown = values if values is not None else (
        {k: v for k, v in customer.model_dump().items() if v is not None} if customer else {})
    return render(
        request, "tenant/plan.html", status_code=status_code, tenant_id=tenant_id,
        tenant_name=(config.tenant_name if config else None) or tenant_id,
        customer=customer, fields=FIELDS, values=shown, errors=errors or {},
        state=state, active=active, cards=cards, period_end=period_end,
        period=views.period_text(state.current_period_start, state.current_period_end, zone,
                                 locale) if state else None,
        scheduled_at=date_in(state.scheduled_at, zone, locale)
        if state and state.scheduled_at else None,
        can_edit=session.can_pay, checkout=checkout, wait=wait,
        refresh_url=refresh_url if wait == "refresh" else None)


@router.get(f"{PREFIX}/tenants/{{tenant_id}}/plan")
async def plan_page(
    request: Request, session: Session, tenant_id: str,
    checkout: Annotated[Literal["returned", "cancelled"] | None, Query()] = None,
    since: Annotated[str | None, Query()] = None,
) -> Response:
    """The Plan page. `checkout` is where Stripe's hosted page sent the browser back: after
    `returned` the page reloads itself every 3 s while the subscription Checkout is pending
    (Stripe's webhook starts the subscription, not the browser's return), for at most 2
    minutes from the return (`since`, Unix seconds, carried by the reload; unreadable or in
    the future: now), then says the confirmation has not arrived yet
    (`plan_views.checkout_wait`)."""
    return await _page(request, session, tenant_id, checkout=checkout, since=since)


def _may_change(session: PortalSession) -> None:
    if not session.can_pay:
        raise forbidden("only the tenant or a super operator may change the plan or the "
                        "billing details")


@router.post(f"{PREFIX}/tenants/{{tenant_id}}/plan/customer")
async def save_customer(request: Request, session: CsrfChecked, tenant_id: str) -> Response:
    """Save the Billing details form: 303 back with "Billing details saved.", or the page
    again (422) with each invalid field marked and explained."""
    _may_change(session)
    check_tenant(session.principal, tenant_id)
    form = await request.form()
    values = {name: str(form.get(name) or "").strip() for name, *_ in FIELDS}
    given = {k: v for k, v in values.items() if v}
    try:
        details = BillingCustomerDetails.model_validate(given)
    except ValidationError as exc:
        errors = {str(e["loc"][0]): _field_message(str(e["loc"][0]), e["msg"])
                  for e in exc.errors() if e["loc"]}
        return await _page(request, session, tenant_id, values=values, errors=errors,
                           status_code=422)
    try:
        await api.put_billing_customer(context(request), request, session.principal,
                                       tenant_id, details)
    except Problem as problem:
        if problem.status not in (409, 502, 503):
            raise
        await _refused(request, session, problem)
    else:
        await flash(request, session, "ok", MESSAGES["saved"])
    return RedirectResponse(plan_path(tenant_id), status_code=303)


def _field_message(name: str, msg: str) -> str:
    if name == "country":
        return "Enter the country as a two-letter ISO code, for example DE or US."
    if name == "email":
        return "Enter a valid email address, for example billing@example.com."
    if name == "name":
        return "Enter the name invoices are addressed to."
    return msg


async def _refused(request: Request, session: PortalSession, problem: Problem) -> None:
    reason = (problem.detail or problem.title).rstrip(".")
    await flash(request, session, "error", MESSAGES["refused"].format(reason=reason))


@router.post(f"{PREFIX}/tenants/{{tenant_id}}/plan/select")
async def select_plan(request: Request, session: CsrfChecked, tenant_id: str) -> Response:
    """Select plan (`action=start`) or Switch to this plan (`action=change`): 303 to Stripe's
    hosted Checkout when the tenant has no card on file, else back with the request noted;
    a refusal (unknown plan, already subscribed, no billing details...) comes back said."""
    _may_change(session)
    form = await request.form()
    action = "change" if form.get("action") == "change" else "start"
    code = str(form.get("plan_code") or "")
    version_text = str(form.get("plan_version") or "")
    if version_text and not VERSION.fullmatch(version_text):
        return await _choose_again(request, session, tenant_id)
    return await _submit(request, session, tenant_id, {
        "action": action, "plan_code": code,
        "plan_version": int(version_text) if version_text else None})


@router.post(f"{PREFIX}/tenants/{{tenant_id}}/plan/cancel")
async def cancel_plan(request: Request, session: CsrfChecked, tenant_id: str) -> Response:
    """Cancel subscription: it ends at the end of the current period."""
    _may_change(session)
    return await _submit(request, session, tenant_id, {"action": "cancel"})


async def _choose_again(request: Request, session: PortalSession, tenant_id: str) -> Response:
    """303 back to the Plan page saying to choose a plan from the list (a crafted form)."""
    await flash(request, session, "error", MESSAGES["refused"].format(
        reason="choose a plan from the list"))
    return RedirectResponse(plan_path(tenant_id), status_code=303)


async def _submit(request: Request, session: PortalSession, tenant_id: str,
                  body: dict[str, object]) -> Response:
    try:
        parsed = api.SubscriptionBody.model_validate(body)
    except ValidationError:
        return await _choose_again(request, session, tenant_id)
    try:
        outcome = await api.post_subscription(context(request), request, session.principal,
                                              tenant_id, parsed)
    except Problem as problem:
        if problem.status not in (404, 409, 502, 503):
            raise
        check_tenant(session.principal, tenant_id)  # another tenant's: the API's 404 page
        await _refused(request, session, problem)
        return RedirectResponse(plan_path(tenant_id), status_code=303)
    if outcome.outcome == "checkout" and outcome.checkout_url:
        return RedirectResponse(outcome.checkout_url, status_code=303)
    plan = None
    if parsed.plan_code:
        found = await invoicer.get_plan(context(request).db, parsed.plan_code,
                                        parsed.plan_version)
        plan = found.plan.name if found else parsed.plan_code
    await flash(request, session, "ok", MESSAGES[parsed.action].format(plan=plan))
    return RedirectResponse(plan_path(tenant_id), status_code=303)


@router.post(f"{PREFIX}/tenants/{{tenant_id}}/billing/portal")
async def update_payment_details(request: Request, session: CsrfChecked,
                                 tenant_id: str) -> Response:
    """Update payment details: 303 to a Stripe billing portal session (it returns to the
    Billing page); a refusal comes back to the Billing page said."""
    _may_change(session)
    try:
        opened = await api.post_billing_portal_session(
            context(request), request, session.principal, tenant_id, api.PortalSessionBody())
    except Problem as problem:
        if problem.status not in (409, 502, 503):
            raise
        await _refused(request, session, problem)
        return RedirectResponse(f"{PREFIX}/tenants/{tenant_id}/billing", status_code=303)
    return RedirectResponse(opened.url, status_code=303)
