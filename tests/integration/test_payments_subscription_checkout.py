"""Subscribing without a card on file (docs/plans.md, "Billing customer and checkout"): a
setup-mode Checkout Session for the tenant's billing customer, and what its signed webhooks
do in the payments service, through the real `stripe` SDK, the fake's hosted page, the real
webhook route and the test's MongoDB."""

from typing import Any

import httpx
import pytest

from contracts.plans import SubscriptionCheckoutCompleted
from services.common.errors import DependencyUnavailable, PermanentError
from services.payments import api, handlers
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from services.payments.subscription_checkout import completed_event_id
from tests.integration.checkout_support import (
    Webhooks,
    fill_in_card,
    webhooks_fixture,  # noqa: F401 (the hooks fixture)
)
from tests.integration.payments_support import received
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, outbox_events

pytestmark = pytest.mark.integration
ACME = api.BillingCustomerDetails(name="Acme GmbH", email="billing@acme.example",
                                  country="DE")
BACK = "http://portal.test/portal/tenants/acme/plans?checkout=returned"
CANCEL = "http://portal.test/portal/tenants/acme/plans?checkout=cancelled"


async def subscribe(settings: PaymentsSettings, deps: Deps, plan: str = "pro",
                    version: int | None = 2) -> str:
    await api.save_billing_customer(settings, "acme", ACME, deps)
    return await api.subscription_checkout(settings, "acme", plan, version, BACK, CANCEL, deps)


async def test_subscribing_needs_a_billing_customer(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    await api.setup_payment_method(payments_settings, "acme", "pm_card_visa")  # card only
    with pytest.raises(PermanentError) as refused:
        await api.subscription_checkout(payments_settings, "acme", "pro", None, BACK, CANCEL,
                                        payments_deps)
    assert refused.value.reason == "no_billing_customer"
    assert stripe_fake.server.app.state.stripe.sessions == {}


async def test_a_subscription_session_is_setup_mode_with_the_plan_in_its_metadata(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    url = await subscribe(payments_settings, payments_deps)
    [session] = stripe_fake.server.app.state.stripe.sessions.values()
    customer = await payments_deps.store.customer("acme")
    assert customer is not None and session["url"] == url
    assert (session["mode"], session["customer"], session["metadata"]) == (
        "setup", customer["customer_id"], {"purpose": "subscription", "tenant_id": "acme",
                                           "plan_code": "pro", "plan_version": "2"})
    assert session["cancel_url"] == CANCEL
    assert await api.pending_subscription_checkout(payments_settings, "acme") == "pro"
    assert await api.pending_subscription_checkout(payments_settings, "globex") is None


async def test_a_completed_subscription_checkout_publishes_one_event_however_often_it_arrives(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    hooks: Webhooks, mongo_db: Any
) -> None:
    url = await subscribe(payments_settings, payments_deps)
    assert (await fill_in_card(url, "4242 4242 4242 4242")).status_code == 303
    await hooks.wait_for_type("checkout.session.completed")
    decisions = await hooks.reconcile(payments_deps)
    assert ("checkout.session.completed", "subscription_checkout") in decisions
    session_id = url.rsplit("/", 1)[-1]
    [event] = await outbox_events(mongo_db)
    assert isinstance(event, SubscriptionCheckoutCompleted)
    assert (event.event_id, event.tenant_id, event.checkout_session_id, event.plan_code,
            event.plan_version, event.billing_email, event.tenant_name) == (
        completed_event_id(session_id), "acme", session_id, "pro", 2, "billing@acme.example",
        "Acme GmbH")
    assert await api.payment_method_on_file(payments_settings, "acme") == (
        "visa", "4242", "card visa 4242")
    assert await api.pending_subscription_checkout(payments_settings, "acme") is None
    # Stripe redelivers the same event: already processed
    [completed] = stripe_fake.events("checkout.session.completed")
    assert await stripe_fake.send(completed["id"], url=hooks.url) == [200]
    await hooks.wait_for_type("checkout.session.completed")
    assert [d for t, d in await hooks.reconcile(payments_deps)
            if t == "checkout.session.completed"] == ["duplicate"]
    # the same completion under another event id (e.g. read back from the API)
    again = received(completed, id="evt_same_session_again")
    assert await handlers.handle_stripe_event(again, payments_deps) == "duplicate"
    assert await payments_deps.store.processed("payments.stripe-events", "evt_same_session_again")
    assert len(await outbox_events(mongo_db)) == 1


async def test_an_expired_subscription_checkout_publishes_nothing_and_is_no_longer_pending(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    hooks: Webhooks, mongo_db: Any
) -> None:
    url = await subscribe(payments_settings, payments_deps)
    assert await api.pending_subscription_checkout(payments_settings, "acme") == "pro"
    assert await payments_deps.gateway.expire_checkout(url.rsplit("/", 1)[-1])
    await hooks.wait_for_type("checkout.session.expired")
    assert ("checkout.session.expired", "checkout_expired") in await hooks.reconcile(
        payments_deps)
    assert await api.pending_subscription_checkout(payments_settings, "acme") is None
    assert await outbox_events(mongo_db) == []
    assert await payments_deps.store.customer("acme") is not None
    assert (await api.payment_method_on_file(payments_settings, "acme")) is None


async def test_a_checkout_for_the_current_version_names_none_and_publishes_nothing_while_open(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    mongo_db: Any
) -> None:
    url = await subscribe(payments_settings, payments_deps, "basic", None)
    [session] = stripe_fake.server.app.state.stripe.sessions.values()
    assert session["status"] == "open" and "plan_version" not in session["metadata"]
    assert url and await outbox_events(mongo_db) == []
    assert await api.pending_subscription_checkout(payments_settings, "acme") == "basic"


async def test_a_new_subscription_checkout_expires_the_tenants_earlier_one(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    hooks: Webhooks
) -> None:
    first = await subscribe(payments_settings, payments_deps, "basic", None)
    await api.setup_checkout(payments_settings, "acme", BACK, CANCEL)  # not a subscription
    second = await api.subscription_checkout(payments_settings, "acme", "pro", None, BACK,
                                             CANCEL, payments_deps)
    sessions = stripe_fake.server.app.state.stripe.sessions
    statuses = [(s["metadata"].get("plan_code"), s["status"]) for s in sessions.values()]
    assert statuses == [("basic", "expired"), (None, "open"), ("pro", "open")]
    async with httpx.AsyncClient(timeout=30) as browser:
        closed = await browser.post(first, data={"card_number": "4242424242424242",
                                                 "expiry": "12 / 34", "cvc": "987",
                                                 "name": "A. Tenant"})
    assert closed.status_code == 410
    await hooks.wait_for_type("checkout.session.expired")
    assert ("checkout.session.expired", "checkout_expired") in await hooks.reconcile(
        payments_deps)
    assert await api.pending_subscription_checkout(payments_settings, "acme") == "pro"
    assert second.endswith(list(sessions)[-1])


async def test_stripe_down_opens_no_subscription_checkout(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    await api.save_billing_customer(payments_settings, "acme", ACME, payments_deps)
    stripe_fake.switches(fail_requests=100)
    with pytest.raises(DependencyUnavailable):
        await api.subscription_checkout(payments_settings, "acme", "pro", None, BACK, CANCEL,
                                        payments_deps)
    stripe_fake.switches(fail_requests=0)
    assert await api.pending_subscription_checkout(payments_settings, "acme") is None


async def test_a_subscription_session_naming_another_tenant_publishes_nothing(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    hooks: Webhooks, mongo_db: Any
) -> None:
    await api.save_billing_customer(payments_settings, "globex", ACME, payments_deps)
    url = await subscribe(payments_settings, payments_deps)
    # acme's session claims to be globex's: the customers differ, nothing is applied
    session_id = url.rsplit("/", 1)[-1]
    stripe_fake.server.app.state.stripe.sessions[session_id]["metadata"]["tenant_id"] = "globex"
    assert (await fill_in_card(url, "4242424242424242")).status_code == 303
    await hooks.wait_for_type("checkout.session.completed")
    assert ("checkout.session.completed", "mismatch") in await hooks.reconcile(payments_deps)
    assert await outbox_events(mongo_db) == []
    assert await api.payment_method_on_file(payments_settings, "globex") is None
