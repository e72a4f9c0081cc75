"""The read endpoints' shapes: money with its currency and formatted text, invoice totals
split into subtotal and reductions, line units, and the timeline's kinds of events."""

from datetime import UTC, datetime
from decimal import Decimal

from services.api.models_reads import Money, decimal_text, monies
from services.api.reads_convert import balance_view, invoice_detail

AT = datetime(2013, 7, 1, tzinfo=UTC)


def invoice_doc() -> dict[str, object]:
    return {
        "_id": "acme:2013-06-01", "invoice_number": "INV-2013-0001", "tenant_id": "acme",
        "tenant_name": "Acme", "currency": "USD", "amount": 1125, "status": "paid",
        "issue_date": "2013-07-01", "due_date": "2013-07-15", "paid_date": "2013-07-02",
        "payment_reference": "pi_1", "payment_method": "card", "timezone": "UTC",
        "period_start": datetime(2013, 6, 1, tzinfo=UTC), "period_end": AT,
        "config_version": 2, "refunded_amount": 100,
        "line_items": [
            {"kind": "flat_fee", "description": "Flat fee", "meter": None,
             "quantity": Decimal(1), "unit_price": Decimal("10.00"), "amount": 1000},
            {"kind": "usage", "description": "cpu", "meter": "cpu_hours",
             "quantity": Decimal("12.50"), "unit_price": Decimal("0.50"), "amount": 625},
            {"kind": "coupon", "description": "Coupon", "meter": None,
             "quantity": Decimal(1), "unit_price": None, "amount": -300},
            {"kind": "credit", "description": "Credit", "meter": None,
             "quantity": Decimal(1), "unit_price": None, "amount": -200},
        ],
        "history": [
            {"status": "pending_payment", "at": AT, "cause": "issued"},
            {"status": "paid", "at": AT, "cause": "pay-1"},
            {"status": "paid", "at": AT, "cause": "refund-ev", "refund_id": "re_1",
             "refunded_amount": 100},
        ],
    }


def test_money_carries_minor_units_currency_and_text() -> None:
    assert Money.of(1050, "USD").model_dump() == {"amount": 1050, "currency": "USD",
                                                  "formatted": "$10.50"}
    assert Money.of(1500, "JPY").formatted == "¥1,500"
    assert [m.currency for m in monies({"USD": 1, "EUR": 2})] == ["EUR", "USD"]
    assert decimal_text(Decimal("1E+2")) == "100" and decimal_text("0.50") == "0.50"


def test_invoice_detail_totals_units_and_timeline() -> None:
    view = invoice_detail(invoice_doc())
    assert (view.subtotal.amount, view.reductions.amount, view.total.amount) == (1625, -500, 1125)
    assert view.refunded.amount == 100
    assert [(li.meter, li.unit, li.quantity) for li in view.line_items[:2]] == [
        (None, None, "1"), ("cpu_hours", "vCPU-hours", "12.50")]
    assert [(e.event, e.cause) for e in view.timeline] == [
        ("issued", None), ("status_changed", "pay-1"), ("refunded", "refund-ev")]
    refund = view.timeline[2]
    assert refund.refund_id == "re_1" and refund.amount == Money.of(100, "USD")


def test_balance_lists_every_currency() -> None:
    view = balance_view("acme", {"outstanding_balance": {"USD": 5}, "total_paid": {},
                                 "overdue_count": 1, "total_invoices": 3})
    assert [m.amount for m in view.outstanding] == [5] and view.total_refunded == []
