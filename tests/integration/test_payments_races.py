"""A manual payment racing a dunning charge: one guard (the per-invoice charge lease) keeps
them apart; money that arrives twice anyway is recorded and reported as `PaymentDuplicated`."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from contracts import PaymentDuplicated
from services.common.errors import PermanentError
from services.payments import handlers
from services.payments.domain import ChargeResult
from services.payments.handlers import Deps
from tests.integration.payments_support import charge_directly, reconcile_all
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import StripeFake, issued_invoice, outbox_events

pytestmark = pytest.mark.integration
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)
RETRY_AT = ISSUED + timedelta(days=3, hours=1)


class ManualPaymentDuringCharge:
    """A gateway whose charge first lets an operator record a manual payment for the invoice
    (the operator's command runs while the Stripe call is in flight)."""

    def __init__(self, deps: Deps, invoice_number: str) -> None:
        self.inner = deps.gateway
        self.deps = deps
        self.invoice_number = invoice_number
        self.manual: str = "not tried"

    async def charge(self, **request: Any) -> ChargeResult:
        try:
            await handlers.record_manual(self.invoice_number, "bank_transfer", "WIRE-7",
                                         date(2013, 8, 4), self.deps)
            self.manual = "recorded"
        except PermanentError as exc:
            self.manual = exc.reason
        result: ChargeResult = await self.inner.charge(**request)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def failed_invoice(deps: Deps) -> Any:
    await handlers.setup_method("acme", "pm_card_chargeCustomerFail", deps)
    invoice = issued_invoice()
    assert await handlers.handle_invoice_issued(invoice, deps) == "failed"
    await handlers.setup_method("acme", "pm_card_visa", deps)
    return invoice


async def test_a_manual_payment_is_refused_while_a_dunning_charge_is_in_flight(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    invoice = await failed_invoice(payments_deps)
    racing = ManualPaymentDuringCharge(payments_deps, invoice.invoice_number)
    deps = Deps(payments_deps.settings, payments_deps.store, racing)  # type: ignore[arg-type]
    assert await handlers.run_due_retries(RETRY_AT, deps) == 1

    assert racing.manual == "charge_in_flight"
    [_, succeeded] = stripe_fake.intents()
    events = await outbox_events(mongo_db)
    assert [type(e).__name__ for e in events] == ["PaymentFailed", "PaymentSucceeded"]
    assert events[1].payment_reference == succeeded["id"] and events[1].attempt == 2
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None and record.payment_reference == succeeded["id"]
    # once the charge is committed the lease is gone: the operator is told it is paid
    with pytest.raises(PermanentError) as again:
        await handlers.record_manual(invoice.invoice_number, "ach", "A-1", None, payments_deps)
    assert again.value.reason == "already_paid"


async def test_a_charge_that_outlives_its_lease_after_a_manual_payment_is_reported_duplicated(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    invoice = await failed_invoice(payments_deps)
    settings = payments_deps.settings.model_copy(update={"payments_charge_lease_seconds": 0})
    racing = ManualPaymentDuringCharge(Deps(settings, payments_deps.store, payments_deps.gateway),
                                       invoice.invoice_number)
    deps = Deps(settings, payments_deps.store, racing)  # type: ignore[arg-type]
    assert await handlers.run_due_retries(RETRY_AT, deps) == 1

    assert racing.manual == "recorded"
    [_, charged] = stripe_fake.intents()
    events = await outbox_events(mongo_db)
    assert [type(e).__name__ for e in events] == [
        "PaymentFailed", "PaymentSucceeded", "PaymentDuplicated"]
    manual, duplicated = events[1], events[2]
    assert (manual.payment_method, manual.payment_reference) == ("bank_transfer", "WIRE-7")
    assert isinstance(duplicated, PaymentDuplicated)
    assert (duplicated.invoice_id, duplicated.amount, duplicated.currency) == (
        invoice.invoice_id, 4900, "USD")
    assert duplicated.payment_reference == charged["id"]
    assert duplicated.settled_by == "WIRE-7"
    record = await payments_deps.store.invoice(invoice.invoice_id)
    assert record is not None and record.duplicate_intents == (charged["id"],)
    # its webhook, arriving later, reports nothing a second time
    assert await reconcile_all(stripe_fake, payments_deps, "payment_intent.succeeded") == [
        "ignore"]
    assert len(await outbox_events(mongo_db)) == 3


async def test_a_stripe_success_for_an_invoice_paid_by_hand_is_recorded_as_a_duplicate(
    payments_deps: Deps, stripe_fake: StripeFake, mongo_db: Any
) -> None:
    invoice = issued_invoice(tenant="globex")
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "awaiting_payment"
    await handlers.record_manual(invoice.invoice_number, "ach", "ACH-1", None, payments_deps)
    await handlers.setup_method("globex", "pm_card_visa", payments_deps)
    charged = await charge_directly(payments_deps, invoice)  # e.g. from Stripe's dashboard

    decisions = await reconcile_all(stripe_fake, payments_deps, "payment_intent.succeeded")
    decisions += await reconcile_all(stripe_fake, payments_deps, "payment_intent.succeeded")
    assert decisions == ["duplicate", "duplicate"]  # the second is the redelivered copy
    events = await outbox_events(mongo_db)
    assert [type(e).__name__ for e in events] == ["PaymentSucceeded", "PaymentDuplicated"]
    assert events[1].payment_reference == charged.payment_intent_id
