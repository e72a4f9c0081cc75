"""The portal's Pay now and Manage payment method in the payments service, through the real
`stripe` SDK against the fake over HTTP, the test's MongoDB and the real webhook route."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from contracts.invoices import InvoiceStatus
from services.common.errors import PermanentError
from services.payments import api, domain, handlers, paying
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from tests.integration.checkout_support import Webhooks, fill_in_card, webhook_ingress
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice, outbox_events

pytestmark = pytest.mark.integration
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)
BACK = "http://portal.test/portal/tenants/acme/invoices/INV-2013-0001?checkout=returned"
CANCEL = "http://portal.test/portal/tenants/acme/invoices/INV-2013-0001?checkout=cancelled"


@pytest.fixture
async def hooks(payments_settings: PaymentsSettings,
                payments_deps: Deps) -> AsyncIterator[Webhooks]:
    async with webhook_ingress(payments_settings, payments_deps) as received:
        yield received


async def pay(deps: Deps, method: paying.PayMethod = "auto", number: str = "INV-2013-0001",
              tenant_id: str | None = "acme") -> paying.PayNowOutcome:
    return await paying.pay_now(deps, number, tenant_id=tenant_id, success_url=BACK,
                                cancel_url=CANCEL, method=method)


async def test_pay_now_charges_the_card_added_after_issue_as_the_next_attempt(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "awaiting_payment"
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    done = await pay(payments_deps)
    assert (done.outcome, done.checkout_url) == ("paid", None)
    [intent] = stripe_fake.intents()
    assert intent["metadata"]["attempt"] == "1" and intent["metadata"]["tenant_id"] == "acme"
    [paid] = await outbox_events(mongo_db)
    assert (type(paid).__name__, paid.attempt, paid.payment_reference) == (
        "PaymentSucceeded", 1, intent["id"])
    with pytest.raises(PermanentError) as refused:
        await pay(payments_deps)
    assert refused.value.reason == "already_paid"
    assert len(stripe_fake.intents()) == 1


async def test_a_declined_pay_now_is_the_next_dunning_attempt_and_keeps_the_schedule(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "failed"
    done = await pay(payments_deps, "card_on_file")
    assert (done.outcome, done.detail) == ("failed", "Your card was declined.")
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None
    assert (record.status, record.attempts, record.charging) == (InvoiceStatus.failed, 2, None)
    assert record.next_attempt_at == ISSUED + timedelta(days=3)  # a click moves no retry
    events = await outbox_events(mongo_db)
    assert [(type(e).__name__, e.attempt) for e in events] == [
        ("PaymentFailed", 1), ("PaymentFailed", 2)]
    keys = sorted(i["metadata"]["attempt"] for i in stripe_fake.intents())
    assert keys == ["1", "2"]


async def test_pay_now_while_another_charge_holds_the_lease_is_processing(
    payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    invoice = issued_invoice()
    await handlers.handle_invoice_issued(invoice, payments_deps)
    until = datetime.now(UTC) + timedelta(minutes=5)
    assert await payments_deps.store.mark_attempt(invoice.invoice_id, 1, ISSUED, until)
    done = await pay(payments_deps)
    assert done.outcome == "processing"
    assert len(stripe_fake.intents()) == 1  # no charge made


@pytest.mark.parametrize(("number", "tenant_id", "method", "reason"), [
    ("INV-2013-0099", "acme", "auto", "unknown_invoice"),
    ("INV-2013-0001", "globex", "auto", "unknown_invoice"),
    ("INV-2013-0001", None, "card_on_file", "no_payment_method"),
])
async def test_pay_now_refuses_unknown_or_foreign_invoices_and_a_missing_card(
    payments_deps: Deps, stripe_fake: StripeFake, number: str, tenant_id: str | None,
    method: paying.PayMethod, reason: str
) -> None:
    await handlers.handle_invoice_issued(issued_invoice(), payments_deps)
    with pytest.raises(PermanentError) as refused:
        await pay(payments_deps, method, number, tenant_id)
    assert refused.value.reason == reason
    assert stripe_fake.intents() == []


async def test_a_checkout_payment_settles_a_failed_invoice_once_and_stops_dunning(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any, hooks: Webhooks
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "failed"
    done = await pay(payments_deps, "checkout")
    assert done.outcome == "checkout" and done.checkout_url is not None

    declined = await fill_in_card(done.checkout_url, "4000 0000 0000 0002")
    assert declined.status_code == 402 and "Your card was declined." in declined.text
    await hooks.wait_for_type("payment_intent.payment_failed", 2)  # attempt 1, then checkout
    failures = [d for t, d in await hooks.reconcile(payments_deps)
                if t == "payment_intent.payment_failed"]
    assert failures == ["ignore", "ignore"]
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None
    assert (record.status, record.attempts) == (InvoiceStatus.failed, 1)
    assert record.next_attempt_at == ISSUED + timedelta(days=3)  # no new retry scheduled

    paid = await fill_in_card(done.checkout_url, "4242 4242 4242 4242")
    assert (paid.status_code, paid.headers["location"]) == (303, BACK)
    await hooks.wait_for_type("checkout.session.completed")
    found = await hooks.reconcile(payments_deps)
    assert ("payment_intent.succeeded", "succeed") in found
    assert ("checkout.session.completed", "ignore") in found
    events = await outbox_events(mongo_db)
    assert [type(e).__name__ for e in events] == ["PaymentFailed", "PaymentSucceeded"]
    checkout_intent = next(i for i in stripe_fake.intents()
                           if i["metadata"].get("source") == domain.CHECKOUT_SOURCE)
    assert events[1].payment_reference == checkout_intent["id"]
    assert events[1].payment_method == "card visa 4242"
    assert await payments_deps.store.next_retry_after(ISSUED) is None
    assert await handlers.run_due_retries(ISSUED + timedelta(days=30), payments_deps) == 0
    # Stripe delivers the success again: nothing new
    assert await stripe_fake.send(stripe_fake.events("payment_intent.succeeded")[-1]["id"],
                                  url=hooks.url) == [200]
    await hooks.wait_for_type("payment_intent.succeeded")
    again = await hooks.reconcile(payments_deps)
    assert [d for t, d in again if t == "payment_intent.succeeded"] == ["duplicate"]
    assert len(await outbox_events(mongo_db)) == 2


async def test_a_setup_checkout_makes_the_new_card_the_default_once(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    hooks: Webhooks
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    assert await api.payment_method_on_file(payments_settings, "acme") == (
        "visa", "4242", "card visa 4242")
    assert await api.payment_method_on_file(payments_settings, "globex") is None
    url = await api.setup_checkout(payments_settings, "acme", BACK, CANCEL)
    assert (await fill_in_card(url, "5555 5555 5555 4444")).status_code == 303
    await hooks.wait_for_type("checkout.session.completed")
    found = await hooks.reconcile(payments_deps)
    assert ("checkout.session.completed", "default_method") in found
    assert await api.payment_method_on_file(payments_settings, "acme") == (
        "mastercard", "4444", "card mastercard 4444")
    customer = await payments_deps.store.customer("acme")
    assert customer is not None
    at_stripe = stripe_fake.server.app.state.stripe.customers[customer["customer_id"]]
    assert at_stripe["invoice_settings"]["default_payment_method"] == \
        customer["payment_method_id"]
    completed = stripe_fake.events("checkout.session.completed")[-1]["id"]
    assert await stripe_fake.send(completed, url=hooks.url) == [200]
    await hooks.wait_for_type("checkout.session.completed")
    again = await hooks.reconcile(payments_deps)
    assert [d for t, d in again if t == "checkout.session.completed"] == ["duplicate"]


async def test_a_setup_session_of_another_customer_is_not_applied(
    payments_settings: PaymentsSettings, payments_deps: Deps, stripe_fake: StripeFake,
    hooks: Webhooks
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    url = await api.setup_checkout(payments_settings, "globex", BACK, CANCEL)
    known = await payments_deps.store.customer("acme")
    assert known is not None
    # globex's session names acme in its metadata: the customers differ, nothing changes
    session_id = url.rsplit("/", 1)[-1]
    stripe_fake.server.app.state.stripe.sessions[session_id]["metadata"]["tenant_id"] = "acme"
    assert (await fill_in_card(url, "5555555555554444")).status_code == 303
    await hooks.wait_for_type("checkout.session.completed")
    assert ("checkout.session.completed", "mismatch") in await hooks.reconcile(payments_deps)
    assert await payments_deps.store.customer("acme") == known


async def test_a_new_checkout_expires_the_invoices_earlier_one(
    payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    await handlers.handle_invoice_issued(issued_invoice(), payments_deps)
    await handlers.handle_invoice_issued(issued_invoice(2), payments_deps)
    first = await pay(payments_deps)
    other = await pay(payments_deps, number="INV-2013-0002")
    second = await pay(payments_deps)
    assert first.checkout_url and second.checkout_url and other.checkout_url
    assert first.checkout_url != second.checkout_url
    stale = await fill_in_card_status(first.checkout_url)
    assert stale == 410  # expired: it can no longer take money
    sessions = stripe_fake.server.app.state.stripe.sessions
    assert sorted(s["status"] for s in sessions.values()) == ["expired", "open", "open"]
    assert (await fill_in_card(second.checkout_url, "4242424242424242")).status_code == 303
    assert (await fill_in_card(other.checkout_url, "4242424242424242")).status_code == 303


async def fill_in_card_status(url: str) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        return (await client.post(url, data={"card_number": "4242424242424242",
                                             "expiry": "12 / 34", "cvc": "987"})).status_code
