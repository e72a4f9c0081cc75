"""The gateway's billing-customer calls (`adapters/stripe_customers.py`) against both servers
of the gateway suite (the project's fake and localstripe). localstripe knows the tax id types
`eu_vat`, `nz_gst`, `au_abn` and `es_cif` only, so these tests use `eu_vat`."""

import pytest
import stripe

from services.payments.adapters.stripe_customers import tax_id_type
from services.payments.adapters.stripe_gateway import StripeGateway
from tests.support.localstripe import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_servers import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.integration
ADDRESS = {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"}




def test_the_tax_id_type_follows_the_customers_country() -> None:
    assert [tax_id_type(c) for c in ("DE", "fr", "GB", "CH", "US", None)] == [
        "eu_vat", "eu_vat", "gb_vat", "ch_vat", "us_ein", "eu_vat"]


async def test_billing_details_land_on_the_customer_with_its_tenant_id(
    gateway: StripeGateway, client: stripe.StripeClient
) -> None:
    customer = await gateway.ensure_customer("acme", None)
    await gateway.update_customer_details(customer, "acme", name="Acme GmbH",
                                          email="billing@acme.example", address=ADDRESS)
    cus = await client.v1.customers.retrieve_async(customer)
    assert (cus.name, cus.email, cus.metadata["tenant_id"]) == (
        "Acme GmbH", "billing@acme.example", "acme")
    assert cus.address is not None
    assert (cus.address.line1, cus.address.city, cus.address.country) == (
        "Hauptstr. 1", "Berlin", "DE")


async def test_the_tax_id_is_the_customers_only_one_and_a_repeat_adds_none(
    gateway: StripeGateway, client: stripe.StripeClient
) -> None:
    customer = await gateway.ensure_customer("acme", None)
    await gateway.set_tax_id(customer, "DE123456789", "DE")
    await gateway.set_tax_id(customer, "DE123456789", "DE")
    listed = await client.v1.customers.tax_ids.list_async(customer)
    assert [(t.type, t.value) for t in listed.data] == [("eu_vat", "DE123456789")]
    await gateway.set_tax_id(customer, "DE999999999", "DE")
    listed = await client.v1.customers.tax_ids.list_async(customer)
    assert [(t.type, t.value) for t in listed.data] == [("eu_vat", "DE999999999")]
    await gateway.set_tax_id(customer, None, "DE")
    assert (await client.v1.customers.tax_ids.list_async(customer)).data == []


async def test_the_default_card_is_read_back_with_the_customers_metadata(
    gateway: StripeGateway
) -> None:
    customer = await gateway.ensure_customer("acme", None)
    assert await gateway.default_method(customer) == (None, {"tenant_id": "acme"})
    pm_id, _ = await gateway.attach_default(customer, "pm_card_visa")
    assert await gateway.default_method(customer) == (pm_id, {"tenant_id": "acme"})
