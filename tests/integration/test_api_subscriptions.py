"""`/v1/tenants/{t}/billing-customer`, `/subscription` and `/billing-portal-sessions` on the
in-process API: the synchronous checks (each 4xx), the Checkout branch without a card on file
and the signed command with one. The payments service's operations are an in-memory stand-in
(`subscribe_support.FakePayments`); the flows through Stripe's fake and the workers are in
`test_api_subscriptions_flow.py`."""

from typing import Any

import pytest

from contracts import TOPIC_TENANT_CONFIG
from contracts.plans import SubscriptionRequested
from services.common.signing import verify
from services.payments.api import BillingCustomerDetails
from tests.integration.subscribe_support import FakePayments, add_plans, plan
from tests.integration.test_invoicer_worker import collect
from tests.support.api import BASE_URL, ApiHarness

pytestmark = pytest.mark.integration

CUSTOMER = {"name": "Acme Ltd", "email": "billing@acme.example", "address_line1": "1 Main St",
            "city": "Berlin", "postal_code": "10115", "country": "DE", "tax_id": "DE123456789"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakePayments:
    return FakePayments().install(monkeypatch)


@pytest.fixture
async def catalog(api: ApiHarness) -> None:
    await add_plans(api.ctx.client, api.ctx.db, plan("starter", 1900), plan("pro", 4900),
                    plan("euro", 4500, currency="EUR"), plan("yearly", 19000,
                                                                 frequency="annually"))


async def headers(api: ApiHarness, tenant_id: str = "acme") -> dict[str, str]:
    return api.auth(await api.key("tenant", tenant_id=tenant_id))


async def subscribe(api: ApiHarness, who: dict[str, str], tenant_id: str = "acme",
                    **body: Any) -> Any:
    return await api.client.post(f"/v1/tenants/{tenant_id}/subscription", json=body,
                                 headers=who)


async def test_the_billing_customer_is_saved_read_and_validated(
    api: ApiHarness, fake: FakePayments
) -> None:
    who = await headers(api)
    missing = await api.client.get("/v1/tenants/acme/billing-customer", headers=who)
    assert missing.status_code == 404
    saved = await api.client.put("/v1/tenants/acme/billing-customer", json=CUSTOMER,
                                 headers=who)
    assert saved.status_code == 200, saved.text
    assert saved.json()["customer_id"] == "cus_acme"
    read = await api.client.get("/v1/tenants/acme/billing-customer",
                                headers=api.auth(await api.key("viewer")))
    assert read.status_code == 200
    assert {k: read.json()[k] for k in CUSTOMER} == CUSTOMER
    [audit] = await api.ctx.db["api_audit"].find(
        {"action": "billing_customer.save"}).to_list()
    assert audit["target"] == "tenant:acme"
    bad = await api.client.put("/v1/tenants/acme/billing-customer",
                               json={**CUSTOMER, "country": "Germany", "email": "nope"},
                               headers=who)
    assert bad.status_code == 422
    fields = {e["loc"][-1] for e in bad.json()["errors"]}
    assert {"country", "email"} <= fields
    other = await api.client.put("/v1/tenants/globex/billing-customer", json=CUSTOMER,
                                 headers=who)
    assert other.status_code == 404 and "globex" not in fake.customers


async def test_starting_without_a_card_opens_a_checkout_back_to_the_plan_page(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    who = await headers(api)
    fake.customers["acme"] = _details()
    answer = await subscribe(api, who, action="start", plan_code="pro")
    assert answer.status_code == 202, answer.text
    assert answer.json()["outcome"] == "checkout"
    assert answer.json()["checkout_url"].startswith("https://checkout.stripe.test/")
    [opened] = fake.checkouts
    assert opened["plan_code"] == "pro" and opened["plan_version"] == 1
    assert opened["success_url"] == f"{BASE_URL}/portal/tenants/acme/plan?checkout=returned"
    assert opened["cancel_url"] == f"{BASE_URL}/portal/tenants/acme/plan?checkout=cancelled"
    state = await api.client.get("/v1/tenants/acme/subscription", headers=who)
    assert state.status_code == 200
    assert state.json()["status"] == "incomplete"
    assert state.json()["pending_checkout_plan"] == "pro"


async def test_starting_with_a_card_on_file_publishes_a_signed_command(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    fake.customers["acme"] = _details()
    fake.cards["acme"] = ("visa", "4242", "card visa 4242")
    answer = await subscribe(api, await headers(api), action="start", plan_code="starter")
    assert answer.status_code == 202, answer.text
    assert answer.json()["outcome"] == "submitted" and fake.checkouts == []
    event_id = answer.json()["event_id"]
    command = await _published(api, event_id)
    assert command.action == "start" and command.plan_code == "starter"
    assert command.billing_email == "billing@acme.example"
    assert command.tenant_name == "Acme Ltd" and command.actor.role == "tenant"
    assert verify(command, api.ctx.settings.signing_key())


async def test_each_refusal_answers_its_status_and_code(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    who = await headers(api)
    no_customer = await subscribe(api, who, action="start", plan_code="pro")
    assert (no_customer.status_code, no_customer.json()["code"]) == (
        409, "no_billing_customer")
    fake.customers["acme"] = _details()
    unknown = await subscribe(api, who, action="start", plan_code="platinum")
    assert unknown.status_code == 404
    old = await subscribe(api, who, action="start", plan_code="pro", plan_version=2)
    assert old.status_code == 404
    huge = await subscribe(api, who, action="start", plan_code="pro", plan_version=10 ** 30)
    assert huge.status_code == 422
    for action in ("change", "cancel"):
        body = {"action": action} | ({"plan_code": "pro"} if action == "change" else {})
        answer = await subscribe(api, who, **body)
        assert (answer.status_code, answer.json()["code"]) == (409, "not_subscribed")
    fake.subscribe("acme", "starter")
    cases = [({"action": "start", "plan_code": "pro"}, "already_subscribed"),
             ({"action": "change", "plan_code": "starter"}, "same_plan"),
             ({"action": "change", "plan_code": "euro"}, "currency_mismatch")]
    for body, code in cases:
        answer = await subscribe(api, who, **body)
        assert (answer.status_code, answer.json().get("code")) == (409, code), body
    for body in ({"action": "renew", "plan_code": "pro"}, {"action": "change"},
                 {"action": "cancel", "plan_code": "pro"},
                 {"action": "change", "plan_code": "pro",
                  "success_url": "https://evil.example/"}):
        assert (await subscribe(api, who, **body)).status_code == 422, body
    other = await subscribe(api, who, "globex", action="cancel")
    assert other.status_code == 404
    viewer = await subscribe(api, api.auth(await api.key("viewer")), action="cancel")
    assert viewer.status_code == 403
    assert await api.ctx.db["api_audit"].count_documents(
        {"action": {"$regex": "^subscription"}}) == 0


async def test_a_tenant_gets_the_newest_plan_version_and_only_super_names_another(
    api: ApiHarness, fake: FakePayments
) -> None:
    await add_plans(api.ctx.client, api.ctx.db, plan("starter", 1900), plan("starter", 2900))
    who = await headers(api)
    fake.customers["acme"] = _details()
    fake.cards["acme"] = ("visa", "4242", "card visa 4242")
    old = await subscribe(api, who, action="start", plan_code="starter", plan_version=1)
    assert (old.status_code, old.json()["code"]) == (409, "plan_version_not_current")
    newest = await subscribe(api, who, action="start", plan_code="starter", plan_version=2)
    assert newest.status_code == 202, newest.text
    fake.subscribe("acme", "starter", version=2)
    back = await subscribe(api, who, action="change", plan_code="starter", plan_version=1)
    assert (back.status_code, back.json()["code"]) == (409, "plan_version_not_current")
    operator = api.auth(await api.key("super"))
    migrated = await subscribe(api, operator, action="change", plan_code="starter",
                               plan_version=1)
    assert migrated.status_code == 202, migrated.text


async def test_a_change_and_a_cancel_are_submitted_for_an_active_subscription(
    api: ApiHarness, fake: FakePayments, catalog: None
) -> None:
    who = await headers(api)
    fake.customers["acme"] = _details()
    fake.subscribe("acme", "starter")
    upgrade = await subscribe(api, who, action="change", plan_code="pro")
    yearly = await subscribe(api, who, action="change", plan_code="yearly")
    cancel = await subscribe(api, who, action="cancel")
    for answer in (upgrade, yearly, cancel):
        assert answer.status_code == 202 and answer.json()["outcome"] == "submitted"
    command = await _published(api, cancel.json()["event_id"])
    assert command.action == "cancel" and command.plan_code is None
    state = await api.client.get("/v1/tenants/acme/subscription", headers=who)
    assert state.json()["plan_code"] == "starter" and state.json()["status"] == "active"


async def test_the_billing_portal_session_returns_to_the_billing_page(
    api: ApiHarness, fake: FakePayments
) -> None:
    who = await headers(api)
    none = await api.client.post("/v1/tenants/acme/billing-portal-sessions", json={},
                                 headers=who)
    assert (none.status_code, none.json()["code"]) == (409, "no_billing_customer")
    fake.customers["acme"] = _details()
    opened = await api.client.post("/v1/tenants/acme/billing-portal-sessions", json={},
                                   headers=who)
    assert opened.status_code == 201, opened.text
    assert opened.json()["url"].startswith("https://billing.stripe.test/")
    assert fake.portal_returns == [f"{BASE_URL}/portal/tenants/acme/billing?setup=returned"]
    foreign = await api.client.post("/v1/tenants/acme/billing-portal-sessions",
                                    json={"return_url": "https://evil.example/"},
                                    headers=who)
    assert foreign.status_code == 422


def _details() -> BillingCustomerDetails:
    return BillingCustomerDetails.model_validate(CUSTOMER)


async def _published(api: ApiHarness, event_id: str) -> SubscriptionRequested:
    """The command `event_id` as published on the configuration topic."""
    records = await collect(api.ctx.settings, TOPIC_TENANT_CONFIG,
                            lambda found: any(r.get("event_id") == event_id for r in found))
    for record in records:
        if record.get("event_id") == event_id:
            return SubscriptionRequested.model_validate(
                {k: v for k, v in record.items() if k != "type"})
    raise AssertionError(f"{event_id} not published")
