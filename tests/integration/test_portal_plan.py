"""The tenant's Plan page and Update payment details on the in-process API (no browser):
the billing details form first (validation, CSRF), plan cards with the right button, the
Checkout redirect, a pending Checkout, the active subscription with a scheduled change,
read-only link sessions and tenant isolation. The payments service's operations are an
in-memory stand-in (`subscribe_support.FakePayments`)."""

import re
import time

import httpx
import pytest

from contracts.plans import PlanLimit
from services.invoicer.handlers import apply_config
from services.payments.api import BillingCustomerDetails
from tests.integration.portal_tenant_support import (
    csrf_of,
    open_link,
    operator_browser,
    text_of,
)
from tests.integration.subscribe_support import FakePayments, add_plans, plan
from tests.integration.test_invoicer_support import config, open_store
from tests.support.api import BASE_URL, ApiHarness

pytestmark = pytest.mark.integration
FORM = {"name": "Acme Ltd", "email": "billing@acme.example", "address_line1": "1 Main St",
        "city": "Berlin", "postal_code": "10115", "country": "de", "tax_id": ""}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakePayments:
    return FakePayments().install(monkeypatch)


@pytest.fixture
async def catalog(api: ApiHarness) -> None:
    computations = PlanLimit(meter="computations", limit=1000, hard=True)
    await add_plans(api.ctx.client, api.ctx.db,
                    plan("starter", 1900, limits=(computations,)), plan("pro", 4900),
                    plan("basic", 900))


async def browser(api: ApiHarness, tenant_id: str = "acme") -> httpx.AsyncClient:
    """Signed in with a tenant key: the tenant need not have a billing configuration yet."""
    return await operator_browser(api, await api.key("tenant", tenant_id=tenant_id))


async def configure(api: ApiHarness, *tenants: str) -> None:
    async with open_store(api.ctx.settings) as store:
        for tenant_id in tenants:
            await apply_config(store, config(tenant_id))


async def test_the_billing_details_come_first_and_are_validated(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    acme = await browser(api)
    page = await acme.get("/portal/tenants/acme/plan")
    assert page.status_code == 200
    assert page.text.index('data-testid="billing-details"') < page.text.index("plan-card-")
    assert 'data-testid="select-plan-' not in page.text
    assert "Save your billing details above" in page.text
    assert 'href="/portal/tenants/acme/plan" aria-current="page"' in page.text
    no_csrf = await acme.post("/portal/tenants/acme/plan/customer", data=FORM)
    assert no_csrf.status_code == 403 and fake.customers == {}
    bad = await acme.post("/portal/tenants/acme/plan/customer",
                          data={**FORM, "csrf_token": csrf_of(page.text), "country": "Germany",
                                "email": "nope"})
    assert bad.status_code == 422 and fake.customers == {}
    assert re.search(r'id="country"[^>]*aria-invalid="true" aria-describedby="country-error"',
                     bad.text)
    assert "two-letter ISO code" in text_of(bad.text, "billing-details")
    assert 'value="Germany"' in bad.text  # what was typed is kept
    saved = await acme.post("/portal/tenants/acme/plan/customer",
                            data={**FORM, "csrf_token": csrf_of(page.text)})
    assert saved.status_code == 303 and saved.headers["location"] == "/portal/tenants/acme/plan"
    assert fake.customers["acme"].country == "DE" and fake.customers["acme"].tax_id is None
    after = await acme.get("/portal/tenants/acme/plan")
    assert text_of(after.text, "flash") == "Billing details saved."
    assert after.text.index("plan-card-") < after.text.index('data-testid="billing-details"')


async def test_plan_cards_show_price_limits_and_select_plan_opens_the_checkout(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    fake.customers["acme"] = _customer()
    acme = await browser(api)
    page = await acme.get("/portal/tenants/acme/plan")
    starter = text_of(page.text, "plan-card-starter")
    assert "$19.00 per month" in starter and "The starter plan." in starter
    assert "Computations: up to 1,000" in starter and "hard limit" in starter
    assert text_of(page.text, "select-plan-pro") == "Select plan Pro"
    assert text_of(page.text, "subscription-none") == "No subscription yet."
    chosen = await acme.post("/portal/tenants/acme/plan/select", data={
        "csrf_token": csrf_of(page.text), "plan_code": "pro", "plan_version": "1",
        "action": "start"})
    assert chosen.status_code == 303
    assert chosen.headers["location"].startswith("https://checkout.stripe.test/")
    assert fake.checkouts[0]["cancel_url"] == (
        f"{BASE_URL}/portal/tenants/acme/plan?checkout=cancelled")
    returned = await acme.get("/portal/tenants/acme/plan?checkout=returned")
    assert "Waiting for Stripe to confirm your card" in text_of(
        returned.text, "subscription-pending")
    assert re.search(r'<meta http-equiv="refresh" content="3; url=/portal/tenants/acme/plan'
                     r'\?checkout=returned&amp;since=\d+">', returned.text)
    cancelled = await acme.get("/portal/tenants/acme/plan?checkout=cancelled")
    assert "no subscription was started" in text_of(cancelled.text, "checkout-message")


async def test_a_crafted_plan_version_is_refused_on_the_page(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    fake.customers["acme"] = _customer()
    acme = await browser(api)
    token = csrf_of((await acme.get("/portal/tenants/acme/plan")).text)
    for version in ("\u00b2", "\u0661", "9" * 5000, "99999999999999999999", "-1", "1.0"):
        chosen = await acme.post("/portal/tenants/acme/plan/select", data={
            "csrf_token": token, "plan_code": "pro", "plan_version": version,
            "action": "start"})
        assert (chosen.status_code, chosen.headers["location"]) == (
            303, "/portal/tenants/acme/plan"), version[:5]
        shown = await acme.get("/portal/tenants/acme/plan")
        assert text_of(shown.text, "flash") == (
            "That did not work: choose a plan from the list."), version[:5]
    assert fake.checkouts == []


async def test_a_country_that_upper_cases_to_a_code_is_refused(
    api: ApiHarness, fake: FakePayments
) -> None:
    acme = await browser(api)
    token = csrf_of((await acme.get("/portal/tenants/acme/plan")).text)
    bad = await acme.post("/portal/tenants/acme/plan/customer",
                          data={**FORM, "csrf_token": token, "country": "\u00df"})
    assert bad.status_code == 422 and fake.customers == {}
    assert "two-letter ISO code" in text_of(bad.text, "billing-details")


async def test_the_page_stops_refreshing_when_stripe_never_confirms(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    fake.customers["acme"] = _customer()
    acme = await browser(api)
    now = int(time.time())
    waiting = "/portal/tenants/acme/plan?checkout=returned&since="
    fake.pending["acme"] = "pro"
    pending = await acme.get(f"{waiting}{now - 60}")
    assert f'url={waiting.replace("&", "&amp;")}{now - 60}"' in pending.text
    assert "This page updates when it does" in text_of(pending.text, "subscription-pending")
    late = await acme.get(f"{waiting}{now - 121}")
    assert 'http-equiv="refresh"' not in late.text
    assert "has not arrived yet" in text_of(late.text, "subscription-pending")
    del fake.pending["acme"]  # expired, or the return URL opened again
    gone = await acme.get(f"{waiting}{now - 60}")
    assert 'http-equiv="refresh"' not in gone.text
    assert text_of(gone.text, "subscription-none") == "No subscription yet."
    for since in ("soon", "9" * 40, str(now + 3600)):  # unreadable or future: from now
        again = await acme.get(f"{waiting}{since}")
        assert again.status_code == 200 and 'http-equiv="refresh"' in again.text


async def test_an_active_subscription_offers_switches_and_cancel(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    fake.customers["acme"] = _customer()
    fake.cards["acme"] = ("visa", "4242", "card visa 4242")
    fake.subscribe("acme", "starter")
    acme = await browser(api)
    page = await acme.get("/portal/tenants/acme/plan")
    assert text_of(page.text, "subscription-plan") == "Starter"
    assert text_of(page.text, "subscription-status") == "Active"
    assert text_of(page.text, "current-plan") == "Current plan"
    assert 'data-testid="select-plan-starter"' not in page.text
    assert "Upgrade: takes effect now" in text_of(page.text, "plan-card-pro")
    assert text_of(page.text, "select-plan-pro") == "Switch to this plan Pro"
    assert "end of the current period (Jun 30, 2013)" in text_of(page.text, "plan-card-basic")
    switched = await acme.post("/portal/tenants/acme/plan/select", data={
        "csrf_token": csrf_of(page.text), "plan_code": "pro", "plan_version": "1",
        "action": "change"})
    assert switched.status_code == 303 and switched.headers["location"].endswith("/plan")
    shown = await acme.get("/portal/tenants/acme/plan")
    assert text_of(shown.text, "flash") == (
        "Plan change to Pro requested. It shows here in a moment.")
    again = await acme.post("/portal/tenants/acme/plan/select", data={
        "csrf_token": csrf_of(page.text), "plan_code": "starter", "action": "change"})
    assert again.status_code == 303
    refused = await acme.get("/portal/tenants/acme/plan")
    assert text_of(refused.text, "flash").startswith("That did not work: the tenant is already")
    cancel = await acme.post("/portal/tenants/acme/plan/cancel",
                             data={"csrf_token": csrf_of(page.text)})
    assert cancel.status_code == 303
    fake.subscribe("acme", "starter", cancel_at_period_end=True)
    ending = await acme.get("/portal/tenants/acme/plan")
    assert "Ends at the end of the current period (Jun 30, 2013)" in text_of(
        ending.text, "subscription-scheduled")
    assert 'data-testid="cancel-subscription"' not in ending.text
    assert 'data-testid="select-plan-' not in ending.text


async def test_read_only_sessions_see_no_forms_and_other_tenants_get_404(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    fake.customers["acme"] = _customer()
    await configure(api, "acme")
    viewer = await api.key("viewer")
    link = await api.client.post("/v1/tenants/acme/portal-sessions", headers=api.auth(viewer))
    assert link.status_code == 201
    read_only = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app),
                                  base_url=BASE_URL)
    assert (await open_link(read_only, link.json()["url"])).status_code == 303
    page = await read_only.get("/portal/tenants/acme/plan")
    assert page.status_code == 200 and "plan-card-pro" in page.text
    assert "<form method=\"post\" action=\"/portal/tenants/acme/plan" not in page.text
    billing_forms = await read_only.post("/portal/tenants/acme/plan/cancel",
                                         data={"csrf_token": csrf_of(page.text)})
    assert billing_forms.status_code == 403
    globex = await browser(api, "globex")
    assert (await globex.get("/portal/tenants/acme/plan")).status_code == 404
    operator = await operator_browser(api, viewer)
    assert (await operator.get("/portal/tenants/acme/plan")).status_code == 200
    for client in (read_only, globex, operator):
        await client.aclose()


async def test_update_payment_details_opens_the_stripe_billing_portal(
    api: ApiHarness, fake: FakePayments
) -> None:
    from services.invoicer.handlers import apply_config
    from tests.integration.test_invoicer_support import config, open_store

    async with open_store(api.ctx.settings) as store:
        await apply_config(store, config("acme"))
    acme = await browser(api)
    page = await acme.get("/portal/tenants/acme/billing")
    assert text_of(page.text, "update-payment-details") == "Update payment details"
    refused = await acme.post("/portal/tenants/acme/billing/portal",
                              data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 303 and refused.headers["location"].endswith("/billing")
    fake.customers["acme"] = _customer()
    opened = await acme.post("/portal/tenants/acme/billing/portal",
                             data={"csrf_token": csrf_of(page.text)})
    assert opened.status_code == 303
    assert opened.headers["location"].startswith("https://billing.stripe.test/")


def _customer() -> BillingCustomerDetails:
    return BillingCustomerDetails.model_validate({**FORM, "country": "DE", "tax_id": None})
