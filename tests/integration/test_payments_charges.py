"""Charging issued invoices through the real `stripe` SDK against the fake over HTTP, with the
test's MongoDB: once per invoice, declines and dunning, transient errors, zero and manual."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts import PaymentFailed, PaymentSucceeded
from services.common.errors import DependencyUnavailable, PermanentError
from services.payments import api, handlers
from services.payments.handlers import Deps
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice, outbox_events

pytestmark = pytest.mark.integration
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)


async def test_the_same_invoice_handled_three_times_charges_once(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    invoice = issued_invoice()
    outcomes = [await handlers.handle_invoice_issued(invoice, payments_deps) for _ in range(3)]
    assert outcomes == ["succeeded", "duplicate", "duplicate"]
    assert len(stripe_fake.intents()) == 1
    intent = stripe_fake.intents()[0]
    assert intent["metadata"]["invoice_id"] == invoice.invoice_id
    assert intent["metadata"]["tenant_id"] == "acme"
    assert intent["metadata"]["invoice_number"] == invoice.invoice_number
    [paid] = await outbox_events(mongo_db)
    assert isinstance(paid, PaymentSucceeded)
    assert (paid.payment_reference, paid.payment_method) == (intent["id"], "card visa 4242")
    assert paid.paid_at == ISSUED and paid.amount == 4900 and paid.attempt == 1


async def test_a_declined_card_fails_and_a_retry_after_the_method_is_updated_succeeds(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", payments_deps)
    assert await handlers.handle_invoice_issued(issued_invoice(), payments_deps) == "failed"
    [failed] = await outbox_events(mongo_db)
    assert isinstance(failed, PaymentFailed)
    assert (failed.failure_code, failed.decline_code) == ("card_declined", "generic_decline")
    assert failed.failure_message == "Your card was declined."
    assert failed.next_attempt_at == ISSUED + timedelta(days=3)

    assert await handlers.run_due_retries(ISSUED + timedelta(days=2), payments_deps) == 0
    settings = payments_deps.settings
    assert await api.next_dunning_after(settings, ISSUED) == ISSUED + timedelta(days=3)
    assert await api.next_dunning_after(settings, ISSUED + timedelta(days=3)) is None
    assert await handlers.setup_method("acme", "pm_card_visa", payments_deps) == "card visa 4242"
    retry_at = ISSUED + timedelta(days=3, hours=1)
    assert await handlers.run_due_retries(retry_at, payments_deps) == 1
    assert await handlers.run_due_retries(retry_at, payments_deps) == 0

    events = await outbox_events(mongo_db)
    assert [type(e).__name__ for e in events] == ["PaymentFailed", "PaymentSucceeded"]
    paid = events[1]
    assert paid.attempt == 2 and paid.paid_at == retry_at
    assert paid.payment_method == "card visa 4242"
    assert len(stripe_fake.intents()) == 2  # one PaymentIntent per attempt


async def test_dunning_stops_after_the_schedule_and_reports_insufficient_funds(
    payments_deps: Deps, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    # Stripe refuses to attach this card, but declines every charge of it as a payment method
    known = await payments_deps.store.customer("acme")
    assert known is not None
    await payments_deps.store.save_customer("acme", known["customer_id"],
                                            "pm_card_chargeDeclinedInsufficientFunds", "card")
    await handlers.handle_invoice_issued(issued_invoice(), payments_deps)
    for days in (3, 5, 7, 30):
        await handlers.run_due_retries(ISSUED + timedelta(days=days), payments_deps)
    events = await outbox_events(mongo_db)
    assert [e.attempt for e in events] == [1, 2, 3, 4]
    assert {e.decline_code for e in events} == {"insufficient_funds"}
    assert [e.next_attempt_at for e in events] == [
        ISSUED + timedelta(days=3), ISSUED + timedelta(days=5), ISSUED + timedelta(days=7), None]
    assert await payments_deps.store.next_retry_after(ISSUED) is None


async def test_a_stripe_500_is_retried_and_then_the_charge_succeeds(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    stripe_fake.switches(fail_requests=2)
    assert await handlers.handle_invoice_issued(issued_invoice(), payments_deps) == "succeeded"
    assert len(stripe_fake.intents()) == 1
    assert [type(e).__name__ for e in await outbox_events(mongo_db)] == ["PaymentSucceeded"]


async def test_a_stripe_that_keeps_failing_raises_a_retryable_error_and_writes_nothing(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    stripe_fake.switches(fail_requests=50)
    with pytest.raises(DependencyUnavailable):
        await handlers.handle_invoice_issued(issued_invoice(), payments_deps)
    stripe_fake.switches(fail_requests=0)
    assert await outbox_events(mongo_db) == []
    assert await handlers.handle_invoice_issued(issued_invoice(), payments_deps) == "succeeded"


async def test_a_zero_invoice_is_settled_without_a_charge(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    await handlers.setup_method("acme", "pm_card_visa", payments_deps)
    assert await handlers.handle_invoice_issued(issued_invoice(amount=0), payments_deps) == (
        "zero_amount")
    [paid] = await outbox_events(mongo_db)
    assert (paid.payment_method, paid.payment_reference, paid.amount) == ("none", "zero-amount", 0)
    assert stripe_fake.intents() == []


async def test_an_invoice_without_a_payment_method_waits_and_a_manual_payment_settles_it(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    invoice = issued_invoice(tenant="globex")
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "awaiting_payment"
    assert await outbox_events(mongo_db) == [] and stripe_fake.intents() == []

    record = await handlers.record_manual(invoice.invoice_number, "bank_transfer", "WIRE-889",
                                          date(2013, 8, 20), payments_deps)
    assert record.status == "paid"
    [paid] = await outbox_events(mongo_db)
    assert (paid.payment_method, paid.payment_reference) == ("bank_transfer", "WIRE-889")
    assert paid.paid_at == datetime(2013, 8, 20, tzinfo=UTC) and paid.invoice_id == (
        invoice.invoice_id)
    with pytest.raises(PermanentError) as again:
        await handlers.record_manual(invoice.invoice_number, "ach", "X", None, payments_deps)
    assert again.value.reason == "already_paid"
    with pytest.raises(PermanentError) as unknown:
        await handlers.record_manual("INV-2013-9999", "ach", "X", None, payments_deps)
    assert unknown.value.reason == "unknown_invoice"
