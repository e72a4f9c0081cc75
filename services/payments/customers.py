"""The tenant's billing customer (docs/plans.md, "Billing customer and checkout"): the
details a tenant gives for invoices, kept on its Stripe customer and in the payments store."""

from pydantic import BaseModel, ConfigDict, EmailStr, Field


class BillingCustomerDetails(BaseModel):
    """Name and billing email (required), postal address and tax id (optional). `country` is
    an ISO 3166-1 alpha-2 code (`DE`); `tax_id` is a VAT number such as `DE123456789`."""

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
