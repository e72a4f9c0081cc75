"""The tenant's billing customer (docs/plans.md, "Billing customer and checkout"): the
details a tenant gives for invoices, kept on its Stripe customer and in the payments store."""

from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

from services.payments.adapters.store import Customer
from services.payments.charging import Deps


class BillingCustomerDetails(BaseModel):
    """Name and billing email (required), postal address and tax id (optional; a blank one,
    as a form sends it, is None). `country` is an ISO 3166-1 alpha-2 code (`DE`, `de` is
    taken as `DE`); `tax_id` is a VAT number such as `DE123456789`. Raises pydantic's
    `ValidationError` otherwise."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    address_line1: str | None = Field(default=None, max_length=200)
    address_line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)
    state: str | None = Field(default=None, max_length=100)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    tax_id: str | None = Field(default=None, max_length=64)

    @field_validator("address_line1", "address_line2", "city", "postal_code", "state",
                     "country", "tax_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip() or None
        return value

    @field_validator("country", mode="before")
    @classmethod
    def _country_upper(cls, value: Any) -> Any:
        # ASCII only: "ß".upper() is "SS", a code the tenant never typed
        return value.upper() if isinstance(value, str) and value.isascii() else value


def from_customer(customer: Customer | None) -> BillingCustomerDetails | None:
    """The billing details kept in a tenant's customer record, None when never saved."""
    billing = (customer or {}).get("billing")
    return BillingCustomerDetails.model_validate(billing) if billing else None


async def save(deps: Deps, tenant_id: str, details: BillingCustomerDetails) -> str:
    """Create or update the tenant's Stripe customer with `details` and record them; returns
    the customer id.

    The customer is created once per tenant (the store's customer id first, else Stripe's
    idempotency key `customer-{tenant}`; the new id is recorded before the details are sent),
    so a save retried after a timeout or a failure updates the same customer. Then name,
    email, address and `metadata[tenant_id]` are set, the tax id made the customer's only one,
    and the details stored. Raises `PermanentError` (`stripe_rejected`) or
    `DependencyUnavailable` (the store then keeps the details saved before, if any)."""
    known = await deps.store.customer(tenant_id)
    had = (known or {}).get("customer_id")
    customer_id = await deps.gateway.ensure_customer(tenant_id, had)
    if customer_id != had:
        await deps.store.save_customer(tenant_id, customer_id, None, None)
    address = {"line1": details.address_line1, "line2": details.address_line2,
               "city": details.city, "postal_code": details.postal_code,
               "state": details.state, "country": details.country}
    await deps.gateway.update_customer_details(
        customer_id, tenant_id, name=details.name, email=str(details.email),
        address={k: v for k, v in address.items() if v})
    await deps.gateway.set_tax_id(customer_id, details.tax_id, details.country)
    await deps.store.save_billing(tenant_id, customer_id, details.model_dump(mode="json"))
    return customer_id
