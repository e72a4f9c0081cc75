"""Pure payments rules: idempotency keys, event ids, dunning schedule, reconciliation."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.payments import domain
from services.payments.domain import ChargeResult, InvoiceRecord

pytestmark = pytest.mark.unit
ISSUED = datetime(2013, 8, 1, tzinfo=UTC)


def record(**changes: object) -> InvoiceRecord:
    base = InvoiceRecord("inv-1", "INV-2013-0001", "acme", 4900, "USD", ISSUED)
    return InvoiceRecord(**{**base.__dict__, **changes})  # type: ignore[arg-type]


DECLINED = ChargeResult(False, "pi_1", failure_code="card_declined",
                        decline_code="generic_decline", failure_message="Your card was declined.")


def test_each_attempt_has_its_own_stable_idempotency_key() -> None:
    keys = {domain.idempotency_key("inv-1", n) for n in (1, 2, 3)}
    assert len(keys) == 3
    assert domain.idempotency_key("inv-1", 2) == domain.idempotency_key("inv-1", 2)


def test_an_invoice_has_exactly_one_possible_payment_succeeded_id() -> None:
    _, first = domain.settle(record(), ChargeResult(True, "pi_a", "card visa 4242"), 1, ISSUED)
    _, second = domain.settle(record(attempts=2), ChargeResult(True, "pi_b"), 3, ISSUED)
    assert first.event_id == second.event_id == domain.succeeded_event_id("inv-1")


def test_a_failure_schedules_retries_3_5_and_7_days_after_the_first_failure() -> None:
    schedule = (3, 5, 7)
    rec, event = domain.fail(record(), DECLINED, 1, ISSUED, schedule)
    assert event.decline_code == "generic_decline" and event.attempt == 1
    assert rec.next_attempt_at == ISSUED + timedelta(days=3)
    for attempt, days in ((2, 5), (3, 7)):
        rec, event = domain.fail(rec, DECLINED, attempt, rec.next_attempt_at, schedule)
        assert rec.next_attempt_at == ISSUED + timedelta(days=days)
        assert rec.first_failed_at == ISSUED
    rec, event = domain.fail(rec, DECLINED, 4, ISSUED + timedelta(days=7), schedule)
    assert rec.next_attempt_at is None and event.next_attempt_at is None
    assert rec.status == "failed"


def test_a_paid_invoice_cannot_be_paid_again_or_moved_by_a_late_failure() -> None:
    paid, _ = domain.settle(record(), ChargeResult(True, "pi_2", "card visa 4242"), 2, ISSUED)
    with pytest.raises(ValueError):
        domain.settle(paid, None, 0, ISSUED, reference="wire-1", method="bank_transfer")
    assert domain.reconcile(paid, DECLINED, "requires_payment_method") == "ignore"
    assert domain.reconcile(paid, ChargeResult(True, "pi_2"), "succeeded") == "ignore"


def test_reconciliation_reports_an_unreported_failure_once() -> None:
    assert domain.reconcile(record(), DECLINED, "requires_payment_method") == "fail"
    failed, _ = domain.fail(record(), DECLINED, 1, ISSUED, (3,))
    assert domain.reconcile(failed, DECLINED, "requires_payment_method") == "ignore"
    assert domain.reconcile(failed, ChargeResult(True, "pi_9"), "succeeded") == "succeed"
    assert domain.reconcile(failed, ChargeResult(False, "pi_9"), "processing") == "ignore"


def test_a_card_declined_on_a_checkout_page_changes_nothing_but_its_success_settles() -> None:
    failed, _ = domain.fail(record(), DECLINED, 1, ISSUED, (3,))
    other = ChargeResult(False, "pi_cs", failure_code="card_declined")
    for invoice in (record(), failed):
        assert domain.reconcile(invoice, other, "requires_payment_method",
                                from_checkout=True) == "ignore"
        assert domain.reconcile(invoice, ChargeResult(True, "pi_cs"), "succeeded",
                                from_checkout=True) == "succeed"


def test_a_card_is_described_by_brand_and_last_four_digits() -> None:
    assert domain.describe_card("visa", "4242") == "card visa 4242"


def test_a_manual_payment_day_is_midnight_in_the_tenants_zone() -> None:
    paid_at = domain.manual_paid_at(date(2013, 8, 20), "America/Los_Angeles")
    assert paid_at == datetime(2013, 8, 20, 7, tzinfo=UTC)
    assert domain.manual_paid_at(date(2013, 8, 20), "UTC") == datetime(2013, 8, 20, tzinfo=UTC)


def test_a_lease_holds_until_it_runs_out_or_the_charge_is_committed() -> None:
    leased = record(status="failed", attempts=1, charging=2,
                    charging_until=ISSUED + timedelta(minutes=10))
    assert leased.leased(ISSUED) and not leased.leased(ISSUED + timedelta(minutes=10))
    paid, _ = domain.settle(leased, ChargeResult(True, "pi_2"), 2, ISSUED)
    assert paid.charging is None and not paid.leased(ISSUED)


def test_a_success_by_an_unknown_intent_on_a_paid_invoice_is_a_duplicate_payment() -> None:
    paid, _ = domain.settle(record(), None, 0, ISSUED, reference="WIRE-1", method="ach")
    extra = ChargeResult(True, "pi_9")
    assert domain.reconcile(paid, extra, "succeeded") == "duplicate"
    again, event = domain.duplicate(paid, extra, ISSUED)
    assert (event.payment_reference, event.settled_by, event.amount) == ("pi_9", "WIRE-1", 4900)
    assert event.event_id == domain.duplicated_event_id("inv-1", "pi_9")
    assert domain.reconcile(again, extra, "succeeded") == "ignore"
    with pytest.raises(ValueError):
        domain.duplicate(again, extra, ISSUED)


def test_a_refund_counts_once_and_only_refunds_of_the_payment_lower_the_invoice() -> None:
    paid, _ = domain.settle(record(), ChargeResult(True, "pi_1"), 1, ISSUED)
    first = domain.Refund("re_1", 900, "USD", "pi_1", "succeeded", ISSUED)
    refunded, event = domain.refund(paid, first)
    assert refunded.refunded_amount == 900 and event is not None
    assert (event.amount, event.refunded_total, event.event_id) == (
        900, 900, domain.refunded_event_id("re_1"))
    with pytest.raises(ValueError):
        domain.refund(refunded, first)
    of_duplicate = domain.Refund("re_2", 4900, "USD", "pi_dup", "succeeded", ISSUED)
    again, none = domain.refund(refunded, of_duplicate)
    assert none is None and again.refunded_amount == 900 and len(again.refunds) == 2


def test_an_intent_must_name_the_invoice_and_carry_its_amount_and_currency() -> None:
    ok = domain.Intent("succeeded", ChargeResult(True, "pi_1"), "inv-1", 4900, "USD")
    assert domain.mismatch(record(), ok) is None
    assert domain.mismatch(record(), replace(ok, invoice_id="inv-2")) == "invoice"
    assert domain.mismatch(record(), replace(ok, amount=100)) == "amount"
    assert domain.mismatch(record(), replace(ok, currency="EUR")) == "currency"


def test_a_tenants_declined_click_is_recorded_but_moves_no_retry() -> None:
    schedule = (3, 5, 7)
    failed, _ = domain.fail(record(), DECLINED, 1, ISSUED, schedule)
    clicked, event = domain.fail(failed, DECLINED, 2, ISSUED + timedelta(hours=1), schedule,
                                 by_tenant=True)
    assert (event.attempt, event.next_attempt_at) == (2, ISSUED + timedelta(days=3))
    assert (clicked.attempts, clicked.tenant_attempts) == (2, 1)
    retried, _ = domain.fail(clicked, DECLINED, 3, ISSUED + timedelta(days=3), schedule)
    assert retried.next_attempt_at == ISSUED + timedelta(days=5)  # the schedule's 2nd step
    ended = replace(retried, next_attempt_at=None)
    after_end, _ = domain.fail(ended, DECLINED, 4, ISSUED, schedule, by_tenant=True)
    assert after_end.next_attempt_at is None


def test_a_click_on_an_invoice_never_charged_starts_the_schedule() -> None:
    clicked, event = domain.fail(record(), DECLINED, 1, ISSUED, (3, 5, 7), by_tenant=True)
    assert (clicked.tenant_attempts, event.next_attempt_at) == (0, ISSUED + timedelta(days=3))


def test_pay_now_charges_the_card_at_most_once_a_minute() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert not record().charged_recently(now)
    assert record(charged_at=now - timedelta(seconds=59)).charged_recently(now)
    assert not record(charged_at=now - domain.PAY_NOW_INTERVAL).charged_recently(now)


def test_each_click_has_its_own_checkout_idempotency_key() -> None:
    assert domain.checkout_idempotency_key("inv-1", "a") != domain.checkout_idempotency_key(
        "inv-1", "b")
