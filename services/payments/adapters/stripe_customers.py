"""Stripe customer calls of the gateway (mixed into `StripeGateway`): the tenant's billing
details on its customer, its tax id, the default card as Stripe knows it, and billing portal
sessions (docs/plans.md, "Billing customer and checkout").

Stripe keeps tax ids as separate `tax_id` objects of the customer
(https://docs.stripe.com/api/tax_ids/create); the gateway keeps at most one, ours. A billing
portal session's `url` is short-lived (https://docs.stripe.com/api/customer_portal/sessions):
it is made per click, never stored.
"""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import stripe

T = TypeVar("T")
#: Stripe tax id types by the customer's country (ISO 3166-1 alpha-2); `eu_vat` otherwise.
TAX_ID_TYPES = {"GB": "gb_vat", "CH": "ch_vat", "NO": "no_vat", "US": "us_ein",
                "AU": "au_abn", "CA": "ca_bn"}


def tax_id_type(country: str | None) -> str:
    """Stripe's `tax_id` type for a customer in `country` (`eu_vat` by default)."""
    return TAX_ID_TYPES.get((country or "").upper(), "eu_vat")


class CustomerCalls:
    """The customer methods of `StripeGateway` (it provides `_client` and `_call`)."""

    _client: stripe.StripeClient

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def update_customer_details(self, customer_id: str, tenant_id: str, *, name: str,
                                      email: str, address: dict[str, str]) -> None:
        """Set the customer's name, email, address (Stripe's `line1`, `line2`, `city`,
        `postal_code`, `state`, `country`; missing parts cleared) and `metadata[tenant_id]`.
        Repeating it changes nothing. Raises `PermanentError` (`stripe_rejected`) or
        `DependencyUnavailable`."""
        params: Any = {"name": name, "email": email, "metadata": {"tenant_id": tenant_id},
                       "address": {k: address.get(k, "") for k in (
                           "line1", "line2", "city", "postal_code", "state", "country")}}
        await self._call("customers.update", lambda: self._client.v1.customers.update_async(
            customer_id, params=params))

    async def set_tax_id(self, customer_id: str, value: str | None, country: str | None) -> None:
        """Make `value` the customer's only tax id (type from `country`), or remove every tax
        id when None; an equal one already there is kept (no second object on a retry)."""
        page = await self._call("customers.tax_ids.list",
                                lambda: self._client.v1.customers.tax_ids.list_async(
                                    customer_id))  # first 10: we keep at most one
        kind = tax_id_type(country)
        keep = None
        for txi in page.data:
            if value and keep is None and txi.value == value and txi.type == kind:
                keep = txi
                continue
            await self._delete_tax_id(customer_id, str(txi.id))
        if value and keep is None:
            await self._call("customers.tax_ids.create",
                             lambda: self._client.v1.customers.tax_ids.create_async(
                                 customer_id, params={"type": kind, "value": value}))

    async def _delete_tax_id(self, customer_id: str, tax_id: str) -> None:
        await self._call("customers.tax_ids.delete",
                         lambda: self._client.v1.customers.tax_ids.delete_async(
                             customer_id, tax_id))

    async def default_method(self, customer_id: str) -> tuple[str | None, dict[str, str]]:
        """(the customer's `invoice_settings.default_payment_method`, its metadata), re-read
        from Stripe (`GET /v1/customers/{id}`)."""
        cus = await self._call("customers.retrieve",
                               lambda: self._client.v1.customers.retrieve_async(customer_id))
        settings = getattr(cus, "invoice_settings", None)
        default = getattr(settings, "default_payment_method", None) if settings else None
        if default is not None and not isinstance(default, str):
            default = getattr(default, "id", None)
        metadata = getattr(cus, "metadata", None)
        found = metadata.to_dict() if metadata is not None else {}
        return (str(default) if default else None), {str(k): str(v) for k, v in found.items()}

    async def portal_session(self, customer_id: str, return_url: str) -> str:
        """A billing portal session for the customer (`POST /v1/billing_portal/sessions`);
        returns its `url`. Raises `PermanentError` (`stripe_rejected`) or
        `DependencyUnavailable`."""
        bps = await self._call("billing_portal.sessions.create",
                               lambda: self._client.v1.billing_portal.sessions.create_async(
                                   params={"customer": customer_id, "return_url": return_url}))
        return str(bps.url)
