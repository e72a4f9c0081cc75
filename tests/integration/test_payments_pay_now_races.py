"""Double-charge paths of Pay now and Checkout (docs/payments.md, "Paying from the portal"),
through the real `stripe` SDK against the fake over HTTP and the test's MongoDB: a second
Checkout before the webhook, an open Checkout page after the invoice is paid another way,
quick declined clicks and the Checkout Session's idempotency key."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.invoices import InvoiceStatus
from services.common.errors import PermanentError
from services.payments import domain, handlers
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings
from tests.integration.checkout_support import Webhooks, fill_in_card, webhook_ingress
from tests.integration.test_payments_pay_now import fill_in_card_status, pay
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice, outbox_events

pytestmark = pytest.mark.integration
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)
VISA = "4242 4242 4242 4242"


@pytest.fixture
async def hooks(payments_settings: PaymentsSettings,
                payments_deps: Deps) -> AsyncIterator[Webhooks]:
    async with webhook_ingress(payments_settings, payments_deps) as received:
        yield received


def sessions(fake: StripeFake) -> list[dict[str, Any]]:
    return list(fake.server.app.state.stripe.sessions.values())


def succeeded(fake: StripeFake) -> list[dict[str, Any]]:
    return [i for i in fake.intents() if i["status"] == "succeeded"]


async def test_pay_now_after_a_paid_checkout_settles_the_invoice_without_a_second_page(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "awaiting_payment"
    first = await pay(payments_deps)
    assert first.outcome == "checkout" and first.checkout_url is not None
    assert (await fill_in_card(first.checkout_url, VISA)).status_code == 303
    # the webhook has not been reconciled yet: the tenant clicks Pay now again
    again = await pay(payments_deps)
    assert (again.outcome, again.checkout_url) == ("paid", None)
    assert len(sessions(stripe_fake)) == 1  # no second hosted page
    [intent] = succeeded(stripe_fake)
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None
    assert (record.status, record.payment_reference) == (InvoiceStatus.paid, intent["id"])
    assert [type(e).__name__ for e in await outbox_events(mongo_db)] == ["PaymentSucceeded"]


async def test_pay_now_while_a_checkout_completes_unreconciled_answers_processing(
    payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    await handlers.handle_invoice_issued(issued_invoice(), payments_deps)
    first = await pay(payments_deps)
    assert first.checkout_url is not None
    assert (await fill_in_card(first.checkout_url, VISA)).status_code == 303
    [intent] = stripe_fake.server.app.state.stripe.intents.values()
    intent["status"] = "processing"  # the session is complete, its payment not confirmed yet
    again = await pay(payments_deps)
    assert (again.outcome, again.checkout_url) == ("processing", None)
    assert len(sessions(stripe_fake)) == 1


async def test_pay_now_while_a_charge_holds_the_lease_starts_no_checkout(
    payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    invoice = issued_invoice()
    await handlers.handle_invoice_issued(invoice, payments_deps)
    until = datetime.now(UTC) + timedelta(minutes=5)
    assert await payments_deps.store.mark_attempt(invoice.invoice_id, 0, ISSUED, until,
                                                  status=InvoiceStatus.pending_payment)
    done = await pay(payments_deps, "checkout")
    assert (done.outcome, done.checkout_url) == ("processing", None)
    assert sessions(stripe_fake) == []


async def test_an_earlier_checkout_that_cannot_be_expired_means_processing(
    payments_deps: Deps, stripe_fake: StripeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    await handlers.handle_invoice_issued(issued_invoice(), payments_deps)
    first = await pay(payments_deps)
    assert first.checkout_url is not None

    async def refused(session_id: str) -> bool:
        return False  # Stripe: not open any more (completed meanwhile)

    monkeypatch.setattr(payments_deps.gateway, "expire_checkout", refused)
    again = await pay(payments_deps)
    assert (again.outcome, again.checkout_url) == ("processing", None)
    assert len(sessions(stripe_fake)) == 1


async def test_a_checkout_made_while_a_charge_took_the_lease_is_expired_at_once(
    payments_deps: Deps, stripe_fake: StripeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = issued_invoice()
    await handlers.handle_invoice_issued(invoice, payments_deps)
    create = payments_deps.gateway.create_checkout

    async def racing(**kwargs: Any) -> Any:  # a card charge starts while the page is made
        until = datetime.now(UTC) + timedelta(minutes=5)
        assert await payments_deps.store.mark_attempt(invoice.invoice_id, 0, ISSUED, until,
                                                      status=InvoiceStatus.pending_payment)
        return await create(**kwargs)

    monkeypatch.setattr(payments_deps.gateway, "create_checkout", racing)
    done = await pay(payments_deps)
    assert (done.outcome, done.checkout_url) == ("processing", None)
    assert [s["status"] for s in sessions(stripe_fake)] == ["expired"]


async def test_pay_now_with_the_card_on_file_expires_the_open_checkout_page(
    payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    await handlers.handle_invoice_issued(issued_invoice(), payments_deps)
    page = await pay(payments_deps)
    assert page.checkout_url is not None
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    assert (await pay(payments_deps, "card_on_file")).outcome == "paid"
    assert await fill_in_card_status(page.checkout_url) == 410
    assert len(succeeded(stripe_fake)) == 1


async def test_a_dunning_retry_expires_the_open_checkout_page_first(
    payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    await handlers.handle_invoice_issued(issued_invoice(), payments_deps)
    page = await pay(payments_deps, "checkout")
    assert page.checkout_url is not None
    assert await handlers.run_due_retries(ISSUED + timedelta(days=3), payments_deps) == 1
    assert [s["status"] for s in sessions(stripe_fake)] == ["expired"]
    assert await fill_in_card_status(page.checkout_url) == 410


async def test_a_manual_payment_expires_the_open_checkout_page(
    payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    invoice = issued_invoice()
    await handlers.handle_invoice_issued(invoice, payments_deps)
    page = await pay(payments_deps)
    assert page.checkout_url is not None
    paid = await handlers.record_manual(invoice.invoice_number, "ach", "ACH-9", None,
                                        payments_deps)
    assert paid.status == InvoiceStatus.paid
    assert await fill_in_card_status(page.checkout_url) == 410
    assert stripe_fake.intents() == []


async def test_a_manual_payment_is_refused_while_a_checkout_cannot_be_expired(
    payments_deps: Deps, stripe_fake: StripeFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    invoice = issued_invoice()
    await handlers.handle_invoice_issued(invoice, payments_deps)
    assert (await pay(payments_deps)).checkout_url is not None

    async def refused(session_id: str) -> bool:
        return False

    monkeypatch.setattr(payments_deps.gateway, "expire_checkout", refused)
    with pytest.raises(PermanentError) as refusal:
        await handlers.record_manual(invoice.invoice_number, "ach", "ACH-9", None,
                                     payments_deps)
    assert refusal.value.reason == "charge_in_flight"
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None and record.status == InvoiceStatus.pending_payment


async def test_declined_clicks_keep_the_dunning_schedule_and_wait_a_minute(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "failed"
    assert (await pay(payments_deps, "card_on_file")).outcome == "failed"
    quick = await pay(payments_deps, "card_on_file")
    assert quick.outcome == "processing"
    assert len(stripe_fake.intents()) == 2  # the click within a minute charged nothing
    await mongo_db["payments_invoices"].update_one(  # a minute later
        {"_id": invoice.invoice_id},
        {"$set": {"charged_at": datetime.now(UTC) - timedelta(minutes=2)}})
    assert (await pay(payments_deps, "card_on_file")).outcome == "failed"
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None
    assert (record.attempts, record.next_attempt_at) == (3, ISSUED + timedelta(days=3))
    # the three scheduled retries all still happen, 3, 5 and 7 days after the first failure
    for days, then in ((3, 5), (5, 7)):
        assert await handlers.run_due_retries(ISSUED + timedelta(days=days), payments_deps) == 1
        record = await payments_deps.store.invoice(invoice.invoice_id)
        assert record is not None and record.next_attempt_at == ISSUED + timedelta(days=then)
    assert await handlers.run_due_retries(ISSUED + timedelta(days=7), payments_deps) == 1
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None and (record.attempts, record.next_attempt_at) == (6, None)
    failures = [(e.attempt, e.next_attempt_at) for e in await outbox_events(mongo_db)]
    assert failures == [(1, ISSUED + timedelta(days=3)), (2, ISSUED + timedelta(days=3)),
                        (3, ISSUED + timedelta(days=3)), (4, ISSUED + timedelta(days=5)),
                        (5, ISSUED + timedelta(days=7)), (6, None)]


async def test_each_click_creates_its_checkout_session_with_its_own_idempotency_key(
    payments_deps: Deps, stripe_fake: StripeFake
) -> None:
    invoice = issued_invoice()
    await handlers.handle_invoice_issued(invoice, payments_deps)
    await pay(payments_deps)
    await pay(payments_deps)
    keys = [k for k in stripe_fake.server.app.state.stripe.idempotency
            if k.startswith(f"checkout-{invoice.invoice_id}-")]
    assert len(keys) == 2 and len(sessions(stripe_fake)) == 2



async def test_a_clicks_failure_webhook_first_still_keeps_the_dunning_schedule(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any, hooks: Webhooks
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "failed"
    invoices = mongo_db["payments_invoices"]
    before = await invoices.find_one({"_id": invoice.invoice_id})
    assert (await pay(payments_deps, "card_on_file")).outcome == "failed"
    click = next(i for i in stripe_fake.intents() if i["metadata"]["attempt"] == "2")
    assert click["metadata"]["source"] == "pay_now"
    # as if the click's own commit came after its webhook: undo it
    await invoices.replace_one({"_id": invoice.invoice_id}, before)
    await mongo_db["payments_outbox"].delete_one(
        {"_id": domain.failed_event_id(invoice.invoice_id, 2)})
    await hooks.wait_for_type("payment_intent.payment_failed", 2)
    assert [d for t, d in await hooks.reconcile(payments_deps)
            if t == "payment_intent.payment_failed"] == ["ignore", "fail"]
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None
    assert (record.attempts, record.tenant_attempts, record.next_attempt_at) == (
        2, 1, ISSUED + timedelta(days=3))
