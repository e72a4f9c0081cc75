"""Paying an invoice and managing the card on file through Stripe (docs/api-endpoints.md,
"Payments"): `POST /v1/invoices/{invoice_number}/pay`,
`GET /v1/tenants/{tenant_id}/payment-method` and
`POST /v1/tenants/{tenant_id}/payment-method/setup`.

Super or the invoice's own tenant may pay; the portal's **Pay now** and **Manage payment
method** call these functions with the session's principal. An invoice becomes paid only when
Stripe confirms the payment (the charge's answer or its webhook), never on the click.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from services.api.auth import allow
from services.api.context import Ctx
from services.api.principal import Principal
from services.api.problems import Problem

router = APIRouter(tags=["payments"])
SuperOrTenant = Annotated[Principal, Depends(allow("super", "tenant"))]
Reader = Annotated[Principal, Depends(allow("super", "viewer", "tenant"))]


class PayBody(BaseModel):
    """Where Stripe's hosted checkout returns the browser: a path of this API (`/portal/...`)
    or an absolute URL on the API's own origin. Default: the invoice's portal page."""

    return_url: str | None = Field(default=None, max_length=2000)


class PayNowView(BaseModel):
    """What paying did: `paid` (the card on file was charged and Stripe confirmed it),
    `failed` (declined; `detail` says why), `processing` (a charge of the invoice is already
    in flight) or `checkout` (no card on file: open `checkout_url`, Stripe's hosted payment
    page; the invoice becomes paid when Stripe's webhook confirms it)."""

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


@router.post("/v1/invoices/{invoice_number}/pay", summary="Pay an invoice through Stripe")
async def pay_invoice(ctx: Ctx, request: Request, who: SuperOrTenant, invoice_number: str,
                      body: PayBody) -> PayNowView:
    """Charge the card on file (an off-session PaymentIntent with the invoice's idempotency
    key) or, without one, start a Stripe Checkout Session. 404 unknown (or another tenant's)
    invoice, 409 already paid, 422 a return URL on another origin."""
    raise Problem(501, "Not Implemented", "paying is not available yet")


@router.get("/v1/tenants/{tenant_id}/payment-method", summary="Payment method on file")
async def payment_method(ctx: Ctx, who: Reader, tenant_id: str) -> PaymentMethodView:
    """The tenant's default card (brand and last four), if any."""
    raise Problem(501, "Not Implemented", "not available yet")


@router.post("/v1/tenants/{tenant_id}/payment-method/setup",
             summary="Set up a new payment method")
async def setup_payment_method(ctx: Ctx, request: Request, who: SuperOrTenant, tenant_id: str,
                               body: SetupBody) -> SetupView:
    """A Stripe Checkout Session in setup mode whose card becomes the tenant's default."""
    raise Problem(501, "Not Implemented", "not available yet")
