"""Paying an invoice and managing the card on file through Stripe (docs/api-endpoints.md,
"Payments"): `POST /v1/invoices/{invoice_number}/pay`,
`GET /v1/tenants/{tenant_id}/payment-method` and
`POST /v1/tenants/{tenant_id}/payment-method/setup`.

Super or the invoice's own tenant may pay; the portal's **Pay now** and **Manage payment
method** call these functions with the session's principal. An invoice becomes paid only when
Stripe confirms the payment (the charge's answer or its webhook), never on the click.
"""

from typing import Annotated, Literal, NoReturn
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from services.api.audit import record_write
from services.api.auth import allow
from services.api.context import ApiContext, Ctx
from services.api.principal import Principal
from services.api.problems import Problem, not_found
from services.api.tenants import tenant_config
from services.common.errors import PermanentError
from services.invoicer import api as invoicer
from services.payments import api as payments

router = APIRouter(tags=["payments"])
SuperOrTenant = Annotated[Principal, Depends(allow("super", "tenant"))]
Reader = Annotated[Principal, Depends(allow("super", "viewer", "tenant"))]


class PayBody(BaseModel):
    """Where Stripe's hosted checkout returns the browser: a path of this API (`/portal/...`)
    or an absolute URL on the API's own origin. Default: the invoice's portal page."""

    return_url: str | None = Field(default=None, max_length=2000)
    method: Literal["auto", "card_on_file", "checkout"] = "auto"


class PayNowView(BaseModel):
    """What paying did: `paid` (the card on file was charged and Stripe confirmed it, or an
    earlier Checkout payment had succeeded), `failed` (declined; `detail` says why),
    `processing` (a payment of the invoice is already in flight, or Pay now charged its
    card less than a minute ago: nothing done) or `checkout` (no card on file: open
    `checkout_url`, Stripe's hosted payment page; the invoice becomes paid when Stripe's
    webhook confirms it)."""

    invoice_number: str
    outcome: Literal["paid", "failed", "processing", "checkout"]
    checkout_url: str | None = None
    detail: str | None = None


class PaymentMethodView(BaseModel):
    """The tenant's default payment method: `on_file` false when there is none; else its
    `brand` (`visa`), `last4` and `description` (`card visa 4242`)."""

    tenant_id: str
    on_file: bool
    brand: str | None = None
    last4: str | None = None
    description: str | None = None


class SetupBody(BaseModel):
    """Where the hosted setup page returns the browser (as `PayBody.return_url`); default the
    tenant's portal Billing page."""

    return_url: str | None = Field(default=None, max_length=2000)


class SetupView(BaseModel):
    """`checkout_url`: Stripe's hosted page (a Checkout Session in setup mode) where the
    tenant enters a card; it becomes the default once Stripe's webhook confirms it."""

    tenant_id: str
    checkout_url: str

#: Refusals of the payments service, as HTTP statuses: `unknown_invoice` here means the
#: invoicer issued it but the payments service has not recorded it yet (try again shortly).
REFUSALS = {"unknown_invoice": 409, "already_paid": 409, "no_payment_method": 409,
            "charge_in_flight": 409, "stripe_rejected": 502}
TITLES = {409: "Conflict", 422: "Unprocessable Content", 502: "Bad Gateway"}


def _refused(exc: PermanentError, what: str) -> NoReturn:
    status = REFUSALS.get(exc.reason, 422)
    if exc.reason == "unknown_invoice":
        raise Problem(status, TITLES[status], f"{what} is not ready for payment yet; try again "
                      "shortly") from exc
    raise Problem(status, TITLES[status], exc.detail or exc.reason) from exc


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def return_url(ctx: ApiContext, request: Request, given: str | None, default: str) -> str:
    """The absolute URL Stripe's hosted page returns to: `given` (else `default`), a path of
    this API (`/portal/...`, not `//host`) made absolute with `BILLING_PORTAL_URL` or the
    request's base URL, or an absolute URL on that same origin. Anything else (another
    origin, a scheme other than http(s), a relative path) is a 422: the API never sends a
    payer to a page it does not serve."""
    base = (ctx.settings.portal_url or str(request.base_url)).rstrip("/")
    url = given if given is not None else default
    if any(ch in url for ch in "\\\r\n\t") or url.startswith("//"):
        raise _bad_url(url)
    if url.startswith("/"):
        return base + url
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and _origin(url) == _origin(base):
        return url
    raise _bad_url(url)


def _bad_url(url: str) -> Problem:
    return Problem(422, "Unprocessable Content", "return_url must be a path of this service "
                   "or an absolute URL on its own origin", errors=[
                       {"loc": ["body", "return_url"], "msg": f"not allowed: {url[:200]!r}",
                        "type": "value_error"}])


def with_query(url: str, **params: str) -> str:
    """`url` with the query parameters `params` set (replacing ones of the same name)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


@router.post("/v1/invoices/{invoice_number}/pay", summary="Pay an invoice through Stripe")
async def pay_invoice(ctx: Ctx, request: Request, who: SuperOrTenant, invoice_number: str,
                      body: PayBody) -> PayNowView:
    """Charge the card on file (an off-session PaymentIntent with the invoice's idempotency
    key) or, without one, start a Stripe Checkout Session. 404 unknown (or another tenant's)
    invoice, 409 already paid, 422 a return URL on another origin."""
    doc = await invoicer.invoice(ctx.db, invoice_number)
    if doc is None or (who.role == "tenant" and doc["tenant_id"] != who.tenant_id):
        raise not_found(f"invoice {invoice_number!r}")
    tenant_id = str(doc["tenant_id"])
    if doc.get("status") == "paid":
        raise Problem(409, "Conflict", f"{invoice_number} is already paid")
    page = f"/portal/tenants/{tenant_id}/invoices/{invoice_number}"
    success = return_url(ctx, request, body.return_url, f"{page}?checkout=returned")
    try:
        done = await payments.pay_now(
            ctx.settings, invoice_number, tenant_id=tenant_id, success_url=success,
            cancel_url=with_query(success, checkout="cancelled"), method=body.method,
            deps=await ctx.payments_deps())
    except PermanentError as exc:
        _refused(exc, invoice_number)
    await record_write(ctx, request, who, "invoice.pay", f"invoice:{invoice_number}",
                       {"tenant_id": tenant_id, "method": body.method,
                        "outcome": done.outcome})
    return PayNowView(invoice_number=done.invoice_number, outcome=done.outcome,
                      checkout_url=done.checkout_url, detail=done.detail)


@router.get("/v1/tenants/{tenant_id}/payment-method", summary="Payment method on file")
async def payment_method(ctx: Ctx, who: Reader, tenant_id: str) -> PaymentMethodView:
    """The tenant's default card (brand and last four), if any. 404 unknown tenant."""
    await tenant_config(ctx, who, tenant_id)
    found = await payments.payment_method_on_file(ctx.settings, tenant_id,
                                                  deps=await ctx.payments_deps())
    if found is None:
        return PaymentMethodView(tenant_id=tenant_id, on_file=False)
    brand, last4, description = found
    return PaymentMethodView(tenant_id=tenant_id, on_file=True, brand=brand, last4=last4,
                             description=description)


@router.post("/v1/tenants/{tenant_id}/payment-method/setup",
             summary="Set up a new payment method")
async def setup_payment_method(ctx: Ctx, request: Request, who: SuperOrTenant, tenant_id: str,
                               body: SetupBody) -> SetupView:
    """A Stripe Checkout Session in setup mode whose card becomes the tenant's default.
    404 unknown tenant, 422 a return URL on another origin."""
    await tenant_config(ctx, who, tenant_id)
    success = return_url(ctx, request, body.return_url,
                         f"/portal/tenants/{tenant_id}/billing?setup=returned")
    try:
        url = await payments.setup_checkout(ctx.settings, tenant_id, success,
                                            with_query(success, setup="cancelled"),
                                            deps=await ctx.payments_deps())
    except PermanentError as exc:
        _refused(exc, tenant_id)
    await record_write(ctx, request, who, "payment_method.setup", f"tenant:{tenant_id}",
                       {"return_url": success})
    return SetupView(tenant_id=tenant_id, checkout_url=url)
