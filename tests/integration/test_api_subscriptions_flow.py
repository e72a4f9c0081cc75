"""Subscribing through the Billing API with the real payments service (Stripe fake over HTTP,
the webhook through the real route) and the invoicer worker: with a card on file the signed
command starts the subscription; without one the hosted Checkout must be completed AND its
signed webhook reconciled before anything starts; an expired Checkout starts nothing and the
invoicer's cycle issues the tenant no invoice."""

import re
from datetime import timedelta
from typing import Any

import pytest

from contracts.base import utc_now
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.api import run_cycle
from services.payments import api as payments
from services.payments import handlers
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from tests.integration.checkout_support import (
    Webhooks,
    api_with_payments,  # noqa: F401 (the api fixture)
    fill_in_card,
    webhooks_fixture,  # noqa: F401 (the hooks fixture)
)
from tests.integration.subscribe_support import add_plans, plan
from tests.support.api import ApiHarness
from tests.support.polling import eventually
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)

pytestmark = pytest.mark.integration
CUSTOMER = {"name": "{} Ltd", "email": "billing@{}.example", "country": "DE"}


@pytest.fixture
async def ready(api: ApiHarness, invoicer: InvoicerStore) -> InvoicerStore:
    """The catalog's plans stored, the invoicer worker running."""
    await add_plans(api.ctx.client, api.ctx.db, plan("starter", 1900), plan("pro", 4900))
    return invoicer


async def as_tenant(api: ApiHarness, tenant_id: str) -> dict[str, str]:
    """A tenant key's headers, after saving the tenant's billing customer through the API."""
    who = api.auth(await api.key("tenant", tenant_id=tenant_id))
    body = {k: v.format(tenant_id) for k, v in CUSTOMER.items()}
    saved = await api.client.put(f"/v1/tenants/{tenant_id}/billing-customer", json=body,
                                 headers=who)
    assert saved.status_code == 200, saved.text
    assert saved.json()["customer_id"].startswith("cus_")
    return who


async def subscription(api: ApiHarness, tenant_id: str, who: dict[str, str]) -> Any:
    found = await api.client.get(f"/v1/tenants/{tenant_id}/subscription", headers=who)
    return found.json() if found.status_code == 200 else None


async def active(api: ApiHarness, tenant_id: str, who: dict[str, str]) -> Any:
    found = await subscription(api, tenant_id, who)
    return found if found and found["status"] == "active" else None


async def start(api: ApiHarness, tenant_id: str, who: dict[str, str], code: str) -> Any:
    answer = await api.client.post(f"/v1/tenants/{tenant_id}/subscription",
                                   json={"action": "start", "plan_code": code}, headers=who)
    assert answer.status_code == 202, answer.text
    return answer.json()


async def test_with_a_card_on_file_the_command_starts_the_subscription(
    api: ApiHarness, ready: InvoicerStore, payments_deps: Deps
) -> None:
    who = await as_tenant(api, "acme")
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    assert (await start(api, "acme", who, "starter"))["outcome"] == "submitted"
    found = await eventually(lambda: active(api, "acme", who), what="acme subscribed")
    assert found["plan_code"] == "starter" and found["plan_version"] == 1
    tenant = await eventually(lambda: ready.tenant("acme"), what="acme's configuration")
    settings = tenant["config"]["settings"]
    assert settings["flat_rate_amount"] == 1900
    assert settings["billing_email"] == "billing@acme.example"


async def test_without_a_card_the_subscription_starts_only_after_stripes_webhook(
    api: ApiHarness, ready: InvoicerStore, payments_settings: PaymentsSettings,
    payments_deps: Deps, hooks: Webhooks
) -> None:
    who = await as_tenant(api, "globex")
    opened = await start(api, "globex", who, "pro")
    assert opened["outcome"] == "checkout"
    pending = await subscription(api, "globex", who)
    assert pending["status"] == "incomplete" and pending["pending_checkout_plan"] == "pro"
    done = await fill_in_card(opened["checkout_url"], "4242 4242 4242 4242")
    assert done.status_code in (200, 303), done.text[:300]
    await hooks.wait_for_type("checkout.session.completed")
    await payments.relay_outbox(payments_settings)
    assert (await subscription(api, "globex", who))["status"] == "incomplete"
    decisions = await hooks.reconcile(payments_deps)
    assert ("checkout.session.completed", "subscription_checkout") in decisions
    await payments.relay_outbox(payments_settings)
    found = await eventually(lambda: active(api, "globex", who), what="globex subscribed")
    assert found["plan_code"] == "pro" and found["pending_checkout_plan"] is None
    card = await payments.payment_method_on_file(payments_settings, "globex",
                                                 deps=payments_deps)
    assert card is not None and card[1] == "4242"


async def test_an_expired_checkout_starts_nothing_and_no_invoice_is_issued(
    api: ApiHarness, ready: InvoicerStore, payments_settings: PaymentsSettings,
    payments_deps: Deps, hooks: Webhooks
) -> None:
    who = await as_tenant(api, "umbrella")
    opened = await start(api, "umbrella", who, "pro")
    session_id = re.search(r"cs_[A-Za-z0-9_]+", opened["checkout_url"])
    assert session_id, opened["checkout_url"]
    assert await payments_deps.gateway.expire_checkout(session_id.group(0))
    await hooks.wait_for_type("checkout.session.expired")
    assert ("checkout.session.expired", "checkout_expired") in await hooks.reconcile(
        payments_deps)
    assert await payments.relay_outbox(payments_settings) == 0
    assert await subscription(api, "umbrella", who) is None  # no pending checkout either
    assert await ready.tenant("umbrella") is None
    report = await run_cycle(api.ctx.settings, utc_now() + timedelta(days=100))
    assert await api.ctx.db["invoicer_invoices"].count_documents(
        {"tenant_id": "umbrella"}) == 0, report
