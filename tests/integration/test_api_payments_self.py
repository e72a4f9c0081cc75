"""`POST /v1/invoices/{n}/pay`, `GET /v1/tenants/{t}/payment-method` and
`POST /v1/tenants/{t}/payment-method/setup` on the in-process API, with invoices issued by the
invoicer's own cycle, the payments service's store and the Stripe fake over HTTP; Checkout is
completed by posting the fake's hosted form, and the webhook goes through the real route."""

from collections.abc import AsyncIterator
from typing import Any

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
from tests.integration.test_invoicer_support import config, open_store, utc
from tests.support.api import BASE_URL, ApiHarness
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake

pytestmark = pytest.mark.integration


@pytest.fixture
async def numbers(api: ApiHarness, payments_deps: Deps) -> dict[str, str]:
    """acme and globex configured, their June 2013 invoices issued by the cycle and recorded
    by the payments service (no card on file yet): invoice number per tenant."""
    settings = api.ctx.settings
    async with open_store(settings) as store:
        for tenant in ("acme", "globex"):
            await apply_config(store, config(tenant))
    await run_cycle(settings, utc(2013, 7, 1))
    found = {}
    async for doc in api.ctx.db["invoicer_outbox"].find({"type": "InvoiceIssued"}):
        issued = InvoiceIssued.model_validate_json(doc["payload"])
        assert await handlers.handle_invoice_issued(issued, payments_deps) == "awaiting_payment"
        found[issued.tenant_id] = issued.invoice_number
    assert set(found) == {"acme", "globex"}
    return found


@pytest.fixture
async def hooks(payments_settings: PaymentsSettings,
                payments_deps: Deps) -> AsyncIterator[Webhooks]:
    async with webhook_ingress(payments_settings, payments_deps) as received:
        yield received


async def tenant(api: ApiHarness, tenant_id: str = "acme") -> dict[str, str]:
    return api.auth(await api.key("tenant", tenant_id=tenant_id))


async def pay(api: ApiHarness, number: str, headers: dict[str, str],
              **body: Any) -> Any:
    return await api.client.post(f"/v1/invoices/{number}/pay", json=body, headers=headers)


async def test_paying_with_the_card_on_file_answers_paid_and_is_audited(
    api: ApiHarness, numbers: dict[str, str], payments_deps: Deps
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    response = await pay(api, numbers["acme"], await tenant(api))
    assert response.status_code == 200, response.text
    assert response.json() == {"invoice_number": numbers["acme"], "outcome": "paid",
                               "checkout_url": None, "detail": None}
    [audit] = await api.ctx.db["api_audit"].find({"action": "invoice.pay"}).to_list()
    assert audit["target"] == f"invoice:{numbers['acme']}"
    assert audit["change"] == {"tenant_id": "acme", "method": "auto", "outcome": "paid"}
    again = await pay(api, numbers["acme"], await tenant(api))
    assert again.status_code == 409 and "already paid" in again.json()["detail"]


async def test_a_declined_card_on_file_answers_failed_with_stripes_message(
    api: ApiHarness, numbers: dict[str, str], payments_deps: Deps
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    super_key = api.auth(await api.key("super"))
    response = await pay(api, numbers["acme"], super_key, method="card_on_file")
    assert response.status_code == 200, response.text
    assert (response.json()["outcome"], response.json()["detail"]) == (
        "failed", "Your card was declined.")


async def test_without_a_card_pay_opens_checkout_and_the_webhook_settles_the_invoice(
    api: ApiHarness, numbers: dict[str, str], payments_deps: Deps, hooks: Webhooks,
    stripe_fake: StripeFake
) -> None:
    number = numbers["acme"]
    response = await pay(api, number, await tenant(api))
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["outcome"] == "checkout"
    assert view["checkout_url"].startswith(f"{stripe_fake.base_url}/checkout/cs_test_")
    session = next(iter(stripe_fake.server.app.state.stripe.sessions.values()))
    page = f"{BASE_URL}/portal/tenants/acme/invoices/{number}"
    assert session["success_url"] == f"{page}?checkout=returned"
    assert session["cancel_url"] == f"{page}?checkout=cancelled"
    assert session["amount_total"] == 1000 and session["currency"] == "usd"

    done = await fill_in_card(view["checkout_url"], "4242 4242 4242 4242")
    assert (done.status_code, done.headers["location"]) == (303, session["success_url"])
    record = await payments_deps.store.invoice_by_number(number)
    assert record is not None and record.status == "pending_payment"  # not on the click
    await hooks.wait_for_type("payment_intent.succeeded")
    assert ("payment_intent.succeeded", "succeed") in await hooks.reconcile(payments_deps)
    record = await payments_deps.store.invoice_by_number(number)
    assert record is not None and record.status == "paid"
    assert record.payment_method == "card visa 4242"
    again = await pay(api, number, await tenant(api))
    assert again.status_code == 409


async def test_another_tenants_or_an_unknown_invoice_is_404(
    api: ApiHarness, numbers: dict[str, str], stripe_fake: StripeFake
) -> None:
    globex = await tenant(api, "globex")
    assert (await pay(api, numbers["acme"], globex)).status_code == 404
    assert (await pay(api, "INV-2099-0001", globex)).status_code == 404
    acme = await tenant(api)
    response = await api.client.get("/v1/tenants/globex/payment-method", headers=acme)
    assert response.status_code == 404
    assert stripe_fake.server.app.state.stripe.sessions == {}


@pytest.mark.parametrize("url", [
    "https://elsewhere.example/portal", "//elsewhere.example/portal", "javascript:alert(1)",
    "portal/relative", f"{BASE_URL}:8443/portal",
])
async def test_a_return_url_off_this_origin_is_422(
    api: ApiHarness, numbers: dict[str, str], stripe_fake: StripeFake, url: str
) -> None:
    response = await pay(api, numbers["acme"], await tenant(api), return_url=url)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "return_url"]
    setup = await api.client.post("/v1/tenants/acme/payment-method/setup",
                                  json={"return_url": url}, headers=await tenant(api))
    assert setup.status_code == 422
    assert stripe_fake.server.app.state.stripe.sessions == {}


async def test_a_return_path_and_a_same_origin_url_are_accepted(
    api: ApiHarness, numbers: dict[str, str], stripe_fake: StripeFake
) -> None:
    for given, expected in (("/portal/x?y=1", f"{BASE_URL}/portal/x?y=1"),
                            (f"{BASE_URL}/portal/z", f"{BASE_URL}/portal/z")):
        response = await pay(api, numbers["acme"], await tenant(api), return_url=given)
        assert response.status_code == 200, response.text
        sessions = stripe_fake.server.app.state.stripe.sessions.values()
        assert expected in [s["success_url"] for s in sessions]


async def test_setting_up_a_card_through_checkout_makes_it_the_default(
    api: ApiHarness, numbers: dict[str, str], payments_deps: Deps, hooks: Webhooks
) -> None:
    acme = await tenant(api)
    before = await api.client.get("/v1/tenants/acme/payment-method", headers=acme)
    assert before.json() == {"tenant_id": "acme", "on_file": False, "brand": None,
                             "last4": None, "description": None}
    response = await api.client.post("/v1/tenants/acme/payment-method/setup", json={},
                                     headers=acme)
    assert response.status_code == 200, response.text
    done = await fill_in_card(response.json()["checkout_url"], "4242424242424242")
    assert done.headers["location"] == f"{BASE_URL}/portal/tenants/acme/billing?setup=returned"
    await hooks.wait_for_type("checkout.session.completed")
    assert ("checkout.session.completed", "default_method") in await hooks.reconcile(
        payments_deps)
    viewer = api.auth(await api.key("viewer"))
    after = await api.client.get("/v1/tenants/acme/payment-method", headers=viewer)
    assert after.json() == {"tenant_id": "acme", "on_file": True, "brand": "visa",
                            "last4": "4242", "description": "card visa 4242"}
    [audit] = await api.ctx.db["api_audit"].find(
        {"action": "payment_method.setup"}).to_list()
    assert audit["target"] == "tenant:acme"
    # the new default is charged by Pay now
    paid = await pay(api, numbers["acme"], acme)
    assert paid.json()["outcome"] == "paid"
