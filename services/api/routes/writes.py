"""The API's write endpoints (docs/api-endpoints.md, "Writes"): billing configuration,
credits, catalog coupons, redemptions and manual payments.

Each command is built with the authenticated principal as its actor, checked here with what
can be checked synchronously (422 invalid, 404 unknown, 409 the state forbids it), signed with
the platform's command signing key and published to `billing.tenant-config.v1`; the answer,
202 with the submission id, comes once the broker acknowledged it, and the write is audited.
The invoicer applies the command (or refuses and audits it) shortly after.
"""

import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from contracts import Actor, BillingConfigSubmitted, CouponCreated, CouponRedeemed, CreditGranted
from contracts.base import Event, utc_now
from services.api.audit import record_write
from services.api.auth import allow
from services.api.context import ApiContext, Ctx
from services.api.models_writes import (
    Accepted,
    BillingConfigBody,
    CouponBody,
    CreditBody,
    Payment,
    PaymentBody,
    RedeemBody,
)
from services.api.principal import Principal
from services.api.problems import Problem, not_found
from services.api.tenants import tenant_config
from services.common.errors import PermanentError
from services.invoicer import api as invoicer
from services.payments import api as payments

router = APIRouter(tags=["writes"])
E = TypeVar("E", bound=Event)
Super = Annotated[Principal, Depends(allow("super"))]
SuperOrTenant = Annotated[Principal, Depends(allow("super", "tenant"))]
#: Manual payment refusals of the payments service, as HTTP statuses.
PAYMENT_STATUS = {"unknown_invoice": 404, "already_paid": 409, "charge_in_flight": 409,
                  "invalid_method": 422}
TITLES = {404: "Not Found", 409: "Conflict", 422: "Unprocessable Content"}


def _actor(who: Principal) -> Actor:
    return Actor(user_id=who.actor_id, role=who.role)


def _invalid(detail: str, errors: list[dict[str, Any]] | None = None) -> Problem:
    if errors:
        return Problem(422, "Unprocessable Content", detail, errors=errors)
    return Problem(422, "Unprocessable Content", detail)


def _build(model: type[E], **fields: Any) -> E:
    """The command, or 422 with the contract's field errors."""
    try:
        return model(**fields)
    except ValidationError as exc:
        errors = [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors()]
        raise _invalid(f"the {model.__name__} command is not valid", errors) from exc


async def _publish(ctx: ApiContext, command: Event, partition_key: str) -> None:
    await invoicer.publish_command(ctx.broker, ctx.settings, command, partition_key)


@router.put("/v1/tenants/{tenant_id}/billing-config", status_code=202,
            summary="Submit a billing configuration")
async def put_billing_config(ctx: Ctx, request: Request, who: Super, tenant_id: str,
                             body: BillingConfigBody) -> Accepted:
    """A new configuration version for the tenant (an unknown tenant is created), validated
    with the invoicer's rules; the current coupon and credits are kept. 202 with the
    submission id, which `GET .../billing-config` lists with its outcome."""
    return await submit_billing_config(ctx, request, who, tenant_id, body, str(uuid.uuid4()))


async def submit_billing_config(ctx: ApiContext, request: Request, who: Principal,
                                tenant_id: str, body: BillingConfigBody,
                                event_id: str) -> Accepted:
    """`put_billing_config` with the caller's command `event_id`: the invoicer applies a
    command id once, so sending the same id again (the portal's one-time form token, after a
    failure between publishing and answering) adds no second version."""
    current = await invoicer.current_config(ctx.db, tenant_id)
    command = _build(
        BillingConfigSubmitted, event_id=event_id, occurred_at=utc_now(),
        tenant_id=tenant_id, actor=_actor(who),
        tenant_name=body.tenant_name or (current.tenant_name if current else None),
        settings=body.settings, timezone=body.timezone, effective_from=body.effective_from,
        price_plan=body.price_plan, coupon=current.coupon if current else None,
        credits=current.credits if current else [])
    try:
        invoicer.validate_submission(command)
    except PermanentError as exc:
        raise _invalid(exc.detail or exc.reason) from exc
    await _publish(ctx, command, tenant_id)
    await record_write(ctx, request, who, "billing_config.submit", f"tenant:{tenant_id}",
                       {"submission_id": command.event_id, **body.model_dump(mode="json")})
    return Accepted(submission_id=command.event_id,
                    status_url=f"/v1/tenants/{tenant_id}/billing-config")


@router.post("/v1/tenants/{tenant_id}/credits", status_code=202, summary="Grant a credit")
async def grant_credit(ctx: Ctx, request: Request, who: Super, tenant_id: str,
                       body: CreditBody) -> Accepted:
    """A goodwill credit in the tenant's current currency; it reduces invoices issued from
    now on until used up. 404 for an unknown tenant."""
    return await grant_credit_once(ctx, request, who, tenant_id, body, str(uuid.uuid4()))


async def grant_credit_once(ctx: ApiContext, request: Request, who: Principal,
                            tenant_id: str, body: CreditBody, event_id: str) -> Accepted:
    """`grant_credit` with the caller's `event_id`, also the credit id: the invoicer applies
    an event id once, so sending the same id again (the portal's one-time form token, after a
    failure between publishing and answering) grants no second credit."""
    current = await tenant_config(ctx, who, tenant_id)
    command = _build(CreditGranted, event_id=event_id, occurred_at=utc_now(),
                     tenant_id=tenant_id, credit_id=event_id, amount=body.amount,
                     currency=current.settings.currency, reason=body.reason, actor=_actor(who))
    await _publish(ctx, command, tenant_id)
    await record_write(ctx, request, who, "credit.grant", f"tenant:{tenant_id}",
                       {"submission_id": event_id, "credit_id": event_id,
                        "amount": body.amount, "currency": command.currency,
                        "reason": body.reason})
    return Accepted(submission_id=event_id, status_url=f"/v1/tenants/{tenant_id}")


@router.post("/v1/coupons", status_code=202, summary="Create a catalog coupon")
async def create_coupon(ctx: Ctx, request: Request, who: Super, body: CouponBody) -> Accepted:
    """A coupon tenants can redeem. Creating an existing code again with the same fields is
    accepted and changes nothing; with other fields: 409."""
    command = _build(CouponCreated, event_id=str(uuid.uuid4()), occurred_at=utc_now(),
                     actor=_actor(who), **body.model_dump())
    if not invoicer.code_is_hard_to_guess(body.code):
        raise _invalid("the coupon code is too easy to guess", [{
            "loc": ["body", "code"], "msg": "needs at least 5 distinct characters from two of "
            "lower case, upper case and digits", "type": "value_error"}])
    existing = await invoicer.coupon(ctx.db, body.code)
    if existing is not None:
        differ = sorted(k for k, v in body.model_dump(exclude={"code"}).items()
                        if existing.get(k) != v)
        if differ:
            raise Problem(409, "Conflict", f"coupon {body.code!r} exists with other "
                          f"{', '.join(differ)}")
    await _publish(ctx, command, f"coupon:{body.code}")
    await record_write(ctx, request, who, "coupon.create", f"coupon:{body.code}",
                       {"submission_id": command.event_id, **body.model_dump(mode="json")})
    return Accepted(submission_id=command.event_id, status_url="/v1/audit")


@router.post("/v1/tenants/{tenant_id}/coupon", status_code=202, summary="Redeem a coupon")
async def redeem_coupon(ctx: Ctx, request: Request, who: SuperOrTenant, tenant_id: str,
                        body: RedeemBody) -> Accepted:
    """The tenant redeems a catalog coupon (super, or a tenant key for its own tenant): it
    reduces the tenant's invoices issued from now on and replaces an earlier one. 404 unknown
    tenant or code, 409 redeemed by its maximum of tenants, 422 another currency."""
    current = await tenant_config(ctx, who, tenant_id)
    coupon = await invoicer.coupon(ctx.db, body.code)
    if coupon is None:
        raise not_found(f"coupon {body.code!r}")
    redeemed_by, limit = list(coupon.get("redeemed_by", [])), coupon.get("max_redemptions")
    if tenant_id not in redeemed_by and limit is not None and len(redeemed_by) >= limit:
        raise Problem(409, "Conflict", f"coupon {body.code!r} was redeemed by its maximum of "
                      f"{limit} tenants")
    if coupon["currency"] != current.settings.currency:
        raise _invalid(f"coupon {body.code!r} is in {coupon['currency']}, the tenant is billed "
                       f"in {current.settings.currency}")
    command = _build(CouponRedeemed, event_id=str(uuid.uuid4()), occurred_at=utc_now(),
                     tenant_id=tenant_id, code=body.code, actor=_actor(who))
    await _publish(ctx, command, tenant_id)
    await record_write(ctx, request, who, "coupon.redeem", f"tenant:{tenant_id}",
                       {"submission_id": command.event_id, "code": body.code})
    return Accepted(submission_id=command.event_id, status_url=f"/v1/tenants/{tenant_id}")


@router.post("/v1/invoices/{invoice_number}/payments", status_code=201,
             summary="Record a manual payment")
async def record_payment(ctx: Ctx, request: Request, who: Super, invoice_number: str,
                         body: PaymentBody) -> Payment:
    """Record an ACH or bank-transfer payment of the invoice (201 with the paid invoice);
    the running payments worker publishes it from its outbox. 404 unknown invoice, 409 already
    paid (or a Stripe charge of it in flight: retry later).
"""
    try:
        record = await payments.record_manual_payment(
            ctx.settings, invoice_number, body.method, body.reference, body.paid_on,
            publish=False, deps=await ctx.payments_deps())
    except PermanentError as exc:
        status = PAYMENT_STATUS.get(exc.reason, 422)
        raise Problem(status, TITLES[status], exc.detail or exc.reason) from exc
    await record_write(ctx, request, who, "payment.record", f"invoice:{invoice_number}",
                       {"method": body.method, "reference": body.reference,
                        "paid_on": body.paid_on.isoformat() if body.paid_on else None,
                        "tenant_id": record.tenant_id})
    return Payment(invoice_number=record.invoice_number, tenant_id=record.tenant_id,
                   status=str(record.status), amount=record.amount, currency=record.currency,
                   payment_method=record.payment_method,
                   payment_reference=record.payment_reference)
