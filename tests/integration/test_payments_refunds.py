"""Refunds: each Stripe refund is counted once by its id (`refund.created`, `refund.updated`
and `charge.refunded` all name it), reported as `PaymentRefunded`, and shown by the invoicer
on the invoice, in the month's revenue and in the tenant totals."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts import PaymentRefunded, PaymentSucceeded
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.handlers import apply_payment
from services.invoicer.reports import dashboard, totals
from services.payments import handlers
from services.payments.handlers import Deps
from tests.integration.payments_support import received
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice, outbox_events

pytestmark = pytest.mark.integration
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)


async def paid_invoice(deps: Deps) -> Any:
    await handlers.setup_method("acme", "pm_card_visa", deps)
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, deps) == "succeeded"
    return invoice


async def refund(deps: Deps, intent_id: str, amount: int) -> None:
    client = deps.gateway._client  # type: ignore[attr-defined]
    await client.v1.refunds.create_async(params={"payment_intent": intent_id, "amount": amount})


async def test_one_refund_announced_by_three_events_is_counted_once(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    invoice = await paid_invoice(payments_deps)
    [intent] = stripe_fake.intents()
    await refund(payments_deps, intent["id"], 900)
    created = stripe_fake.events("refund.created")[0]
    updated = received(created, id="evt_refund_updated", type="refund.updated")
    events = [received(e) for e in stripe_fake.events() if e["type"].startswith(("refund",
                                                                                 "charge.ref"))]
    decisions = [await handlers.handle_stripe_event(e, payments_deps)
                 for e in [*events, updated, *events]]
    assert decisions.count("refund") == 1

    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None and (record.refunded_amount, record.status) == (900, "paid")
    out = await outbox_events(mongo_db)
    assert [type(e).__name__ for e in out] == ["PaymentSucceeded", "PaymentRefunded"]
    refunded = out[1]
    assert isinstance(refunded, PaymentRefunded)
    assert (refunded.amount, refunded.currency, refunded.refunded_total) == (900, "USD", 900)
    assert refunded.refund_id == created["data"]["object"]["id"]
    assert refunded.payment_reference == intent["id"]


async def test_two_partial_refunds_seen_only_through_charge_refunded_both_count(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    invoice = await paid_invoice(payments_deps)
    [intent] = stripe_fake.intents()
    await refund(payments_deps, intent["id"], 900)
    await refund(payments_deps, intent["id"], 600)
    for evt in stripe_fake.events("charge.refunded"):
        await handlers.handle_stripe_event(received(evt), payments_deps)
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None and record.refunded_amount == 1500
    out = [e for e in await outbox_events(mongo_db) if isinstance(e, PaymentRefunded)]
    assert sorted(e.amount for e in out) == [600, 900]
    assert max(e.refunded_total for e in out) == 1500


async def test_the_invoicer_shows_refunds_on_the_invoice_in_revenue_and_in_totals(
    common_settings: Any, mongo_db: Any
) -> None:
    from services.common.mongo import database, make_client
    from services.invoicer.handlers import apply_refund

    client = make_client(common_settings)
    store = InvoicerStore(client, database(client, common_settings))
    paid_at = datetime(2013, 8, 2, 12, tzinfo=UTC)
    await store.invoices.insert_one({
        "_id": "inv-acme-1", "invoice_number": "INV-2013-0001", "tenant_id": "acme",
        "currency": "USD", "amount": 4900, "status": "pending_payment",
        "issue_date": "2013-08-01", "due_date": "2013-08-15", "paid_date": None,
        "period_start": ISSUED - timedelta(days=31), "period_end": ISSUED,
        "timezone": "UTC", "billing_email": "billing@acme.example",
        "email_notifications": True, "history": [],
    })
    try:
        await apply_payment(store, PaymentSucceeded(
            invoice_id="inv-acme-1", invoice_number="INV-2013-0001", tenant_id="acme",
            amount=4900, currency="USD", payment_reference="pi_1", payment_method="card",
            paid_at=paid_at))
        event = PaymentRefunded(
            event_id="11111111-1111-4111-8111-111111111111", occurred_at=paid_at,
            invoice_id="inv-acme-1", invoice_number="INV-2013-0001", tenant_id="acme",
            refund_id="re_1", amount=900, currency="USD", payment_reference="pi_1",
            refunded_total=900, refunded_at=datetime(2013, 9, 3, tzinfo=UTC))
        assert await apply_refund(store, event) == 900
        assert await apply_refund(store, event) is None  # redelivered: nothing more

        doc = await store.invoices.find_one({"_id": "inv-acme-1"})
        assert doc is not None and (doc["status"], doc["refunded_amount"]) == ("paid", 900)
        assert doc["history"][-1]["refunded_amount"] == 900
        assert doc["history"][-1]["at"] == datetime(2013, 9, 3, tzinfo=UTC)
        august = await dashboard(store, datetime(2013, 8, 20, tzinfo=UTC))
        september = await dashboard(store, datetime(2013, 9, 20, tzinfo=UTC))
        assert august["monthly_revenue"] == {"USD": 4900}
        assert september["monthly_revenue"] == {"USD": -900}
        view = totals([doc])
        assert view["total_paid"] == {"USD": 4000} and view["total_refunded"] == {"USD": 900}
        assert doc["paid_date"] == date(2013, 8, 2).isoformat()
    finally:
        await client.close()
