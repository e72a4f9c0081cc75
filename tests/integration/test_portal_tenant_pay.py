"""Pay now and Manage payment method from the tenant pages, against the in-process API, the
payments service's store and the Stripe fake over HTTP (docs/portal.md, "Tenant pages"):
the card on file, a declined card, Stripe's hosted checkout and its way back, an already paid
invoice, the card shown on the Billing page, and no charge without the form's CSRF token."""

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from contracts import InvoiceIssued
from services.invoicer.api import run_cycle
from services.invoicer.handlers import apply_config
from services.payments import handlers
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from tests.integration.checkout_support import (
    Webhooks,
    api_with_payments,  # noqa: F401 (the api fixture)
    fill_in_card,
    webhook_ingress,
)
from tests.integration.portal_tenant_support import open_link
from tests.integration.test_invoicer_support import config, open_store, utc
from tests.support.api import BASE_URL, ApiHarness
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake

pytestmark = pytest.mark.integration


@pytest.fixture
async def number(api: ApiHarness, payments_deps: Deps) -> str:
    """acme's June 2013 invoice, issued by the cycle and recorded by the payments service;
    the API's client is signed in to acme's portal."""
    async with open_store(api.ctx.settings) as store:
        await apply_config(store, config("acme"))
    await run_cycle(api.ctx.settings, utc(2013, 7, 1))
    doc = await api.ctx.db["invoicer_outbox"].find_one({"type": "InvoiceIssued"})
    assert doc is not None
    issued = InvoiceIssued.model_validate_json(doc["payload"])
    assert await handlers.handle_invoice_issued(issued, payments_deps) == "awaiting_payment"
    link = await api.client.post("/v1/tenants/acme/portal-sessions",
                                 headers=api.auth(await api.key("super")))
    assert (await open_link(api.client, link.json()["url"])).status_code == 303
    return issued.invoice_number


@pytest.fixture
async def hooks(payments_settings: PaymentsSettings,
                payments_deps: Deps) -> AsyncIterator[Webhooks]:
    async with webhook_ingress(payments_settings, payments_deps) as received:
        yield received


def page_of(number: str) -> str:
    return f"/portal/tenants/acme/invoices/{number}"


async def press(api: ApiHarness, number: str, method: str) -> httpx.Response:
    """Open the invoice page and press the pay button `method` (auto or checkout)."""
    page = await api.client.get(page_of(number))
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf and f'value="{method}"' in page.text
    return await api.client.post(page_of(number) + "/pay",
                                 data={"csrf_token": csrf.group(1), "method": method})


def message(page: str) -> str:
    found = re.search(r'data-testid="payment-message"[^>]*>(.*?)</div>', page, re.S)
    assert found, "no payment message"
    return " ".join(found.group(1).split())


async def test_pay_now_charges_the_card_on_file_and_says_so(
    api: ApiHarness, number: str, payments_deps: Deps, stripe_fake: StripeFake,
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    done = await press(api, number, "auto")
    assert (done.status_code, done.headers["location"]) == (303, page_of(number))
    shown = await api.client.get(done.headers["location"])
    assert message(shown.text) == "Payment received. Thank you."
    assert stripe_fake.server.app.state.stripe.sessions == {}  # no checkout involved
    record = await payments_deps.store.invoice_by_number(number)
    assert record is not None and record.status == "paid"

    again = await press(api, number, "auto")  # the payments service knows it is paid
    assert again.status_code == 303 and again.headers["location"] == page_of(number)
    assert "already paid" in message((await api.client.get(again.headers["location"])).text)


async def test_a_declined_card_shows_the_reason_and_offers_another_card(
    api: ApiHarness, number: str, payments_deps: Deps,
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    done = await press(api, number, "auto")
    assert done.status_code == 303
    shown = await api.client.get(done.headers["location"])
    assert message(shown.text) == ("The payment failed: Your card was declined. You can pay "
                                   "with another card below.")
    assert ">Pay with another card<" in shown.text


async def test_pay_with_another_card_goes_through_checkout_and_back(
    api: ApiHarness, number: str, payments_deps: Deps, hooks: Webhooks,
    stripe_fake: StripeFake,
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    started = await press(api, number, "checkout")
    assert started.status_code == 303
    hosted = started.headers["location"]
    assert hosted.startswith(f"{stripe_fake.base_url}/checkout/cs_test_")
    back = await fill_in_card(hosted, "4242 4242 4242 4242")
    assert back.headers["location"] == f"{BASE_URL}{page_of(number)}?checkout=returned"
    returned = await api.client.get(back.headers["location"])
    # the invoice is not paid on the click: the page waits for Stripe's confirmation
    assert message(returned.text) == (
        "Payment submitted. The invoice shows Paid as soon as Stripe confirms it.")
    assert '<meta http-equiv="refresh" content="3">' in returned.text
    assert ">Pay now<" not in returned.text  # no second payment while this one is confirmed
    assert ">Pay with another card<" not in returned.text
    await hooks.wait_for_type("payment_intent.succeeded")
    assert ("payment_intent.succeeded", "succeed") in await hooks.reconcile(payments_deps)
    cancelled = await api.client.get(page_of(number), params={"checkout": "cancelled"})
    assert message(cancelled.text) == "Payment cancelled."


async def test_no_charge_and_no_checkout_without_the_csrf_token(
    api: ApiHarness, number: str, payments_deps: Deps, stripe_fake: StripeFake,
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    refused = await api.client.post(page_of(number) + "/pay", data={"method": "auto"})
    assert refused.status_code == 403
    setup = await api.client.post("/portal/tenants/acme/billing/payment-method")
    assert setup.status_code == 403
    fake = stripe_fake.server.app.state.stripe
    assert fake.sessions == {}
    record = await payments_deps.store.invoice_by_number(number)
    assert record is not None and record.status == "pending_payment"


async def test_the_billing_page_shows_the_card_and_manages_it_through_checkout(
    api: ApiHarness, number: str, payments_deps: Deps, stripe_fake: StripeFake,
) -> None:
    before = await api.client.get("/portal/tenants/acme/billing")
    assert 'data-testid="payment-method">No payment method on file<' in before.text
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    page = await api.client.get("/portal/tenants/acme/billing")
    assert 'data-testid="payment-method">Visa ending in 4242<' in page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    started = await api.client.post("/portal/tenants/acme/billing/payment-method",
                                    data={"csrf_token": csrf.group(1)})
    assert started.status_code == 303
    assert started.headers["location"].startswith(f"{stripe_fake.base_url}/checkout/cs_test_")
    [session] = stripe_fake.server.app.state.stripe.sessions.values()
    assert session["mode"] == "setup"
    assert session["success_url"] == f"{BASE_URL}/portal/tenants/acme/billing?setup=returned"
    back = await api.client.get("/portal/tenants/acme/billing", params={"setup": "returned"})
    assert 'data-testid="setup-message"' in back.text
