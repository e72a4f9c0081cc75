"""A tenant's billing customer, subscription and Stripe billing portal (docs/api-endpoints.md,
"Subscriptions"; the rules of plans and subscriptions: docs/plans.md):

- `GET|PUT /v1/tenants/{tenant_id}/billing-customer`
- `GET|POST /v1/tenants/{tenant_id}/subscription`
- `POST /v1/tenants/{tenant_id}/billing-portal-sessions`

Super or the tenant itself may change them; viewers may read. A subscription is never started
by the browser's return from Stripe: without a card on file `start` opens a setup-mode Checkout
Session and the invoicer starts the subscription when the payments service has reconciled
Stripe's signed `checkout.session.completed` webhook. Every other request is a signed
`SubscriptionRequested` command that the invoicer applies.
"""

import uuid
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Literal, NoReturn, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, model_validator

from contracts import Actor
from contracts.base import utc_now
from contracts.plans import SubscriptionRequested
from services.api.audit import record_write
from services.api.auth import allow, check_tenant
from services.api.context import ApiContext, Ctx
from services.api.principal import Principal
from services.api.problems import Problem, not_found
from services.api.routes.payments_self import return_url
from services.common.errors import PermanentError
from services.invoicer import api as invoicer
from services.payments import api as payments

router = APIRouter(tags=["subscriptions"])
SuperOrTenant = Annotated[Principal, Depends(allow("super", "tenant"))]
Reader = Annotated[Principal, Depends(allow("super", "viewer", "tenant"))]
#: Refusals of the payments service, as HTTP statuses.
REFUSALS = {"no_billing_customer": 409, "stripe_rejected": 502}
#: The largest plan version a request may name (9 digits; versions count from 1).
MAX_PLAN_VERSION = 999_999_999
TITLES = {404: "Not Found", 409: "Conflict", 422: "Unprocessable Content", 502: "Bad Gateway"}
T = TypeVar("T")


class BillingCustomerView(payments.BillingCustomerDetails):
    """The tenant's billing customer as Stripe holds it (name, billing email, address, tax
    id) and its Stripe customer id (`cus_...`) when known."""

    tenant_id: str
    customer_id: str | None = None


class SubscriptionView(BaseModel):
    """The tenant's subscription (times in UTC). `status` is `active` (until it ends; a
    cancellation or a downgrade at the period's end is `cancel_at_period_end` or
    `scheduled_plan_code` from `scheduled_at`), `canceled` (ended) or `incomplete`: no
    subscription yet, but a subscription Checkout opened in the last 24 h that Stripe has not
    confirmed (`pending_checkout_plan`, the plan chosen; all other plan fields null)."""

    tenant_id: str
    status: Literal["active", "canceled", "incomplete"]
    plan_code: str | None = None
    plan_version: int | None = None
    plan_name: str | None = None
    started_at: datetime | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    scheduled_plan_code: str | None = None
    scheduled_at: datetime | None = None
    pending_checkout_plan: str | None = None


class SubscriptionBody(BaseModel):
    """`start` or `change` to `plan_code` (version `plan_version`, default its newest; only
    super may name a version other than the newest), or
    `cancel` (no plan). `success_url` and `cancel_url` are where Stripe's hosted Checkout
    returns the browser when `start` needs a card (a path of this API or an absolute URL on
    its origin; default the tenant's portal Plan page)."""

    action: Literal["start", "change", "cancel"]
    plan_code: str | None = Field(default=None, min_length=1, max_length=64)
    plan_version: int | None = Field(default=None, ge=1, le=MAX_PLAN_VERSION)
    success_url: str | None = Field(default=None, max_length=2000)
    cancel_url: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _plan_for_start_and_change(self) -> "SubscriptionBody":
        if (self.action == "cancel") != (self.plan_code is None):
            raise ValueError("plan_code is required for start and change, and only for them")
        return self


class SubscriptionOutcome(BaseModel):
    """What `POST .../subscription` did: `checkout` (open `checkout_url`, Stripe's hosted
    page, to put a card on file; the subscription starts when Stripe confirms it) or
    `submitted` (the invoicer applies command `event_id`; `GET .../subscription` shows it)."""

    tenant_id: str
    outcome: Literal["checkout", "submitted"]
    checkout_url: str | None = None
    event_id: str | None = None


class PortalSessionBody(BaseModel):
    """Where Stripe's billing portal returns the browser (as `success_url`); default the
    tenant's portal Billing page."""

    return_url: str | None = Field(default=None, max_length=2000)


class PortalSessionView(BaseModel):
    """`url`: Stripe's billing portal session, where the tenant changes its default card."""

    tenant_id: str
    url: str


def _refused(exc: PermanentError) -> NoReturn:
    status = REFUSALS.get(exc.reason, 422)
    raise Problem(status, TITLES[status], exc.detail or exc.reason, code=exc.reason) from exc


async def _payments(call: Awaitable[T]) -> T:
    """Await a call of the payments service; its `PermanentError` becomes the Problem of
    `REFUSALS` (409 `no_billing_customer`, 502 `stripe_rejected`, else 422)."""
    try:
        return await call
    except PermanentError as exc:
        _refused(exc)


def _conflict(code: str, detail: str) -> Problem:
    return Problem(409, "Conflict", detail, code=code)


@router.get("/v1/tenants/{tenant_id}/billing-customer", summary="The billing customer")
async def get_billing_customer(ctx: Ctx, who: Reader, tenant_id: str) -> BillingCustomerView:
    """The tenant's billing customer; 404 when it has none (or it is another tenant's)."""
    check_tenant(who, tenant_id)
    found = await payments.billing_customer(ctx.settings, tenant_id,
                                            deps=await ctx.payments_deps())
    if found is None:
        raise not_found(f"billing customer of tenant {tenant_id!r}")
    return BillingCustomerView(tenant_id=tenant_id, **found.model_dump())


@router.put("/v1/tenants/{tenant_id}/billing-customer", summary="Save the billing customer")
async def put_billing_customer(ctx: Ctx, request: Request, who: SuperOrTenant, tenant_id: str,
                               body: payments.BillingCustomerDetails) -> BillingCustomerView:
    """Create or update the tenant's Stripe customer (the tenant id in its metadata). 422 with
    field errors for a bad body (country: ISO 3166-1 alpha-2), 502 when Stripe refuses."""
    check_tenant(who, tenant_id)
    customer_id = await _payments(payments.save_billing_customer(
        ctx.settings, tenant_id, body, deps=await ctx.payments_deps()))
    await record_write(ctx, request, who, "billing_customer.save", f"tenant:{tenant_id}",
                       {"customer_id": customer_id, **body.model_dump(mode="json")})
    return BillingCustomerView(tenant_id=tenant_id, customer_id=customer_id,
                               **body.model_dump())


async def subscription_state(ctx: ApiContext, tenant_id: str) -> SubscriptionView | None:
    """The tenant's subscription, or the plan of its pending subscription Checkout
    (`incomplete`), or None when there is neither. No access check: callers make it."""
    sub = await invoicer.subscription_of(ctx.db, tenant_id)
    pending = await payments.pending_subscription_checkout(ctx.settings, tenant_id,
                                                           deps=await ctx.payments_deps())
    if sub is None:
        if pending is None:
            return None
        return SubscriptionView(tenant_id=tenant_id, status="incomplete",
                                pending_checkout_plan=pending)
    return SubscriptionView(
        tenant_id=tenant_id, status=sub.status, plan_code=sub.plan_code,
        plan_version=sub.plan_version, plan_name=sub.plan_name, started_at=sub.started_at,
        current_period_start=sub.current_period_start,
        current_period_end=sub.current_period_end,
        cancel_at_period_end=sub.cancel_at_period_end,
        scheduled_plan_code=sub.scheduled_plan_code, scheduled_at=sub.scheduled_at,
        pending_checkout_plan=pending)


@router.get("/v1/tenants/{tenant_id}/subscription", summary="The subscription")
async def get_subscription(ctx: Ctx, who: Reader, tenant_id: str) -> SubscriptionView:
    """The tenant's subscription (or its pending Checkout); 404 when there is neither."""
    check_tenant(who, tenant_id)
    found = await subscription_state(ctx, tenant_id)
    if found is None:
        raise not_found(f"subscription of tenant {tenant_id!r}")
    return found


async def _check_request(ctx: ApiContext, who: Principal, tenant_id: str,
                         body: SubscriptionBody) -> None:
    """The synchronous refusals (docs/api-endpoints.md, "Subscriptions"): 404 unknown plan,
    409 `already_subscribed`, `not_subscribed`, `plan_version_not_current` (a tenant names
    a version other than the plan's newest; only super may), `same_plan`,
    `currency_mismatch`."""
    sub = await invoicer.subscription_of(ctx.db, tenant_id)
    active = sub is not None and sub.status == "active"
    if body.action == "start" and active:
        raise _conflict("already_subscribed", "the tenant already has a subscription; "
                        "change or cancel it")
    if body.action != "start" and not active:
        raise _conflict("not_subscribed", "the tenant has no active subscription")
    if body.plan_code is None:
        return
    plan = await invoicer.get_plan(ctx.db, body.plan_code, body.plan_version)
    if plan is None:
        raise not_found(f"plan {body.plan_code!r}"
                        + (f" version {body.plan_version}" if body.plan_version else ""))
    if who.role != "super" and body.plan_version is not None:
        newest = await invoicer.get_plan(ctx.db, plan.code)
        if newest is not None and newest.version != plan.version:
            raise _conflict("plan_version_not_current", f"version {plan.version} of plan "
                            f"{plan.code!r} is not its newest ({newest.version}); only a super "
                            "operator may choose another version")
    if body.action != "change" or sub is None:
        return
    if plan.code == sub.plan_code and plan.version == sub.plan_version:
        raise _conflict("same_plan", f"the tenant is already on {plan.plan.name}")
    current = await invoicer.get_plan(ctx.db, sub.plan_code, sub.plan_version)
    if current is not None and current.plan.currency != plan.plan.currency:
        raise _conflict("currency_mismatch", f"{plan.plan.name} is billed in "
                        f"{plan.plan.currency}, the subscription in {current.plan.currency}; "
                        "cancel and subscribe again")


@router.post("/v1/tenants/{tenant_id}/subscription", status_code=202,
             summary="Start, change or cancel the subscription")
async def post_subscription(ctx: Ctx, request: Request, who: SuperOrTenant, tenant_id: str,
                            body: SubscriptionBody) -> SubscriptionOutcome:
    """Start (needs a billing customer; without a card on file: a Stripe Checkout Session in
    setup mode, 202 `checkout`), change or cancel the subscription (202 `submitted`). 404
    unknown plan, 409 `already_subscribed`, `not_subscribed`, `plan_version_not_current`,
    `same_plan`, `no_billing_customer`, `currency_mismatch`, 422 a bad body or a return URL
    on another origin."""
    check_tenant(who, tenant_id)
    page = f"/portal/tenants/{tenant_id}/plan"
    success = return_url(ctx, request, body.success_url, f"{page}?checkout=returned")
    cancel = return_url(ctx, request, body.cancel_url, f"{page}?checkout=cancelled")
    await _check_request(ctx, who, tenant_id, body)
    deps = await ctx.payments_deps()
    customer = None
    if body.action == "start":
        customer = await payments.billing_customer(ctx.settings, tenant_id, deps=deps)
        if customer is None:
            raise _conflict("no_billing_customer", "save the billing details (name and "
                            "billing email) before choosing a plan")
    if body.action == "start" and body.plan_code is not None and \
            await payments.payment_method_on_file(ctx.settings, tenant_id, deps=deps) is None:
        plan = await invoicer.get_plan(ctx.db, body.plan_code, body.plan_version)
        version = plan.version if plan is not None else body.plan_version or 1
        url = await _payments(payments.subscription_checkout(
            ctx.settings, tenant_id, body.plan_code, version, success, cancel, deps=deps))
        await record_write(ctx, request, who, "subscription.checkout", f"tenant:{tenant_id}",
                           {"plan_code": body.plan_code, "plan_version": version})
        return SubscriptionOutcome(tenant_id=tenant_id, outcome="checkout", checkout_url=url)
    command = SubscriptionRequested(
        event_id=str(uuid.uuid4()), occurred_at=utc_now(), tenant_id=tenant_id,
        action=body.action, plan_code=body.plan_code, plan_version=body.plan_version,
        billing_email=customer.email if customer else None,
        tenant_name=customer.name if customer else None,
        actor=Actor(user_id=who.actor_id, role=who.role))
    await invoicer.publish_command(ctx.broker, ctx.settings, command, tenant_id)
    await record_write(ctx, request, who, f"subscription.{body.action}", f"tenant:{tenant_id}",
                       {"event_id": command.event_id, "plan_code": body.plan_code,
                        "plan_version": body.plan_version})
    return SubscriptionOutcome(tenant_id=tenant_id, outcome="submitted",
                               event_id=command.event_id)


@router.post("/v1/tenants/{tenant_id}/billing-portal-sessions", status_code=201,
             summary="Open Stripe's billing portal")
async def post_billing_portal_session(ctx: Ctx, request: Request, who: SuperOrTenant,
                                      tenant_id: str,
                                      body: PortalSessionBody) -> PortalSessionView:
    """A Stripe billing portal session for the tenant's customer (change the default card).
    409 `no_billing_customer`, 422 a return URL on another origin, 502 Stripe refused."""
    check_tenant(who, tenant_id)
    back = return_url(ctx, request, body.return_url,
                      f"/portal/tenants/{tenant_id}/billing?setup=returned")
    url = await _payments(payments.billing_portal_url(ctx.settings, tenant_id, back,
                                                      deps=await ctx.payments_deps()))
    await record_write(ctx, request, who, "billing_portal.open", f"tenant:{tenant_id}",
                       {"return_url": back})
    return PortalSessionView(tenant_id=tenant_id, url=url)
