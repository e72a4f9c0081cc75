"""The tenant's billing customer in the payments service (docs/plans.md, "Billing customer and
checkout"), through the real `stripe` SDK against the fake over HTTP and the test's MongoDB:
one Stripe customer per tenant however often the details are saved or a save is retried, its
tax id, and the billing portal's new card reaching the store through `customer.updated`."""

from typing import Any

import httpx
import pytest

from services.common.errors import DependencyUnavailable, PermanentError
from services.payments import api
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from tests.integration.checkout_support import (
    Webhooks,
    webhooks_fixture,  # noqa: F401 (the hooks fixture)
)
from tests.support.polling import eventually
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake

pytestmark = pytest.mark.integration
ACME = api.BillingCustomerDetails(
    name="Acme GmbH", email="billing@acme.example", address_line1="Hauptstr. 1",
    city="Berlin", postal_code="10115", country="DE", tax_id="DE123456789")
BACK = "http://portal.test/portal/tenants/acme/billing?portal=returned"


def stripe_state(fake: StripeFake) -> Any:
    return fake.server.app.state.stripe


async def test_a_billing_customer_is_created_then_updated_on_one_stripe_customer(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    first = await api.save_billing_customer(payments_settings, "acme", ACME, payments_deps)
    moved = ACME.model_copy(update={"name": "Acme AG", "email": "ap@acme.example",
                                    "address_line1": "Seestr. 5", "tax_id": "DE999999999"})
    assert await api.save_billing_customer(payments_settings, "acme", moved,
                                           payments_deps) == first
    [cus] = stripe_state(stripe_fake).customers.values()
    assert (cus["id"], cus["name"], cus["email"], cus["metadata"]) == (
        first, "Acme AG", "ap@acme.example", {"tenant_id": "acme"})
    assert cus["address"] == {"line1": "Seestr. 5", "line2": None, "city": "Berlin",
                              "postal_code": "10115", "state": None, "country": "DE"}
    [tax] = stripe_state(stripe_fake).tax_ids.values()
    assert (tax["customer"], tax["type"], tax["value"]) == (first, "eu_vat", "DE999999999")
    assert await api.billing_customer(payments_settings, "acme") == moved
    assert await api.billing_customer(payments_settings, "globex") is None


async def test_saving_the_same_details_again_keeps_one_tax_id_and_a_card_on_file(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    await api.setup_payment_method(payments_settings, "acme", "pm_card_visa")
    await api.save_billing_customer(payments_settings, "acme", ACME, payments_deps)
    await api.save_billing_customer(payments_settings, "acme", ACME, payments_deps)
    assert len(stripe_state(stripe_fake).customers) == 1
    assert len(stripe_state(stripe_fake).tax_ids) == 1
    assert await api.payment_method_on_file(payments_settings, "acme") == (
        "visa", "4242", "card visa 4242")
    without = ACME.model_copy(update={"tax_id": None})
    await api.save_billing_customer(payments_settings, "acme", without, payments_deps)
    assert stripe_state(stripe_fake).tax_ids == {}


async def test_a_save_retried_after_a_failure_creates_no_second_customer(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway: Any = payments_deps.gateway
    real = gateway.update_customer_details
    calls: list[str] = []

    async def times_out_once(*args: Any, **kwargs: Any) -> None:
        calls.append("update")
        if len(calls) == 1:
            raise DependencyUnavailable("Stripe customers.update timed out")
        await real(*args, **kwargs)

    monkeypatch.setattr(gateway, "update_customer_details", times_out_once)
    with pytest.raises(DependencyUnavailable):
        await api.save_billing_customer(payments_settings, "acme", ACME, payments_deps)
    assert await api.billing_customer(payments_settings, "acme") is None
    customer_id = await api.save_billing_customer(payments_settings, "acme", ACME,
                                                  payments_deps)
    assert list(stripe_state(stripe_fake).customers) == [customer_id]
    assert await api.billing_customer(payments_settings, "acme") == ACME


async def test_a_save_whose_store_write_failed_reuses_the_customer_stripe_made(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    store: Any = payments_deps.store
    real = store.save_customer

    async def fails_once(*args: Any) -> None:
        monkeypatch.setattr(store, "save_customer", real)
        raise DependencyUnavailable("MongoDB unavailable")

    monkeypatch.setattr(store, "save_customer", fails_once)
    with pytest.raises(DependencyUnavailable):
        await api.save_billing_customer(payments_settings, "acme", ACME, payments_deps)
    assert await payments_deps.store.customer("acme") is None
    customer_id = await api.save_billing_customer(payments_settings, "acme", ACME,
                                                  payments_deps)
    assert list(stripe_state(stripe_fake).customers) == [customer_id]


async def test_stripe_down_is_dependency_unavailable_and_stores_nothing(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    stripe_fake.switches(fail_requests=100)
    with pytest.raises(DependencyUnavailable):
        await api.save_billing_customer(payments_settings, "acme", ACME, payments_deps)
    stripe_fake.switches(fail_requests=0)
    assert await api.billing_customer(payments_settings, "acme") is None
    assert stripe_state(stripe_fake).customers == {}


async def test_the_billing_portal_needs_a_billing_customer(
    payments_settings: PaymentsSettings, payments_deps: Deps
) -> None:
    with pytest.raises(PermanentError) as refused:
        await api.billing_portal_url(payments_settings, "acme", BACK, payments_deps)
    assert refused.value.reason == "no_billing_customer"


async def test_a_card_added_in_the_billing_portal_becomes_the_default_after_the_webhook(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    hooks: Webhooks
) -> None:
    await api.save_billing_customer(payments_settings, "acme", ACME, payments_deps)
    await api.setup_payment_method(payments_settings, "acme", "pm_card_visa")
    url = await api.billing_portal_url(payments_settings, "acme", BACK, payments_deps)
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(url)
        assert page.status_code == 200 and "Visa ending in 4242" in page.text
        done = await client.post(url, data={"card_number": "5555 5555 5555 4444",
                                            "expiry": "12 / 34", "cvc": "987",
                                            "name": "A. Tenant"})
    assert (done.status_code, done.headers["location"]) == (303, BACK)
    customer = await payments_deps.store.customer("acme")
    assert customer is not None
    at_stripe = stripe_state(stripe_fake).customers[customer["customer_id"]]
    new_card = at_stripe["invoice_settings"]["default_payment_method"]
    assert new_card != customer["payment_method_id"]  # not in the store before the webhook

    def new_default_announced() -> bool:
        return any(e.stripe_event_type == "customer.updated" and e.payload["data"]["object"][
            "invoice_settings"]["default_payment_method"] == new_card for e in hooks.events)

    await eventually(new_default_announced, what="customer.updated naming the new card")
    decisions = await hooks.reconcile(payments_deps)
    assert ("customer.updated", "default_method") in decisions
    assert await api.payment_method_on_file(payments_settings, "acme") == (
        "mastercard", "4444", "card mastercard 4444")
    stored = await payments_deps.store.customer("acme")
    assert stored is not None and stored["payment_method_id"] == new_card
    assert await api.billing_customer(payments_settings, "acme") == ACME
