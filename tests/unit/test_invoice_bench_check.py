"""The invoice run benchmark's own checks (bench/invoice_check.py, bench/invoice_report.py):
its independent pricing agrees with the invoicer's on generated tenants, it reports a wrong
invoice and gaps in invoice numbers, and its run-time estimate refuses a run that cannot
fit and suggests one that does."""

import copy
from decimal import Decimal
from typing import Any

import pytest

from bench.invoice_check import check_numbers, compare, expected_invoice, exponent, meter_total
from bench.invoice_data import (
    CURRENCIES,
    METERS,
    TenantSpec,
    UsageRecord,
    buckets_planned,
    make_tenants,
    usage_batches,
)
from bench.invoice_report import estimate_seconds, suggest_hours
from services.invoicer.pricing import compose_invoice

pytestmark = pytest.mark.unit
EXPONENTS = {c: exponent(c) for c in CURRENCIES}


def generated(count: int, hours: int) -> tuple[list[TenantSpec], UsageRecord]:
    tenants = make_tenants(count, seed=5, exponents=EXPONENTS, shared_coupons=2)
    record = UsageRecord()
    for _ in usage_batches(tenants, hours, 5, record, batch_size=10**9):
        pass
    return tenants, record


def stored(spec: TenantSpec, record: UsageRecord) -> dict[str, Any]:
    """The invoice document fields the check reads, as the benchmark expects them."""
    want = expected_invoice(spec, record)
    return {"currency": spec.currency, "period_start": spec.start, "period_end": spec.end,
            "amount": want.total,
            "line_items": [{"kind": k, "meter": m, "quantity": q, "amount": a}
                           for k, m, q, a in want.lines]}


def test_independent_pricing_agrees_with_the_invoicer_on_every_model_currency_and_coupon() -> None:
    tenants, record = generated(300, hours=3)
    assert {c.model for t in tenants for c in t.charges} == {
        "per_unit", "graduated", "volume", "package"}
    assert {t.currency for t in tenants} >= {"JPY", "KWD", "USD", "EUR"}
    for spec in tenants:
        usage = {m: meter_total(record, spec.tenant_id, m) for m in METERS}
        draft = compose_invoice(currency=spec.currency, flat_rate_amount=spec.flat_minor,
                                charges=spec.charges, usage=usage, coupon=spec.coupon)
        want = expected_invoice(spec, record)
        assert [(li.kind, li.meter, li.quantity, li.amount) for li in draft.lines] == list(
            want.lines), spec.tenant_id
        assert draft.total == want.total


def test_every_tenant_has_one_full_period_with_its_usage_inside_it() -> None:
    tenants, record = generated(50, hours=24)
    assert record.events == buckets_planned(tenants, 24) == 50 * 4 * 24
    for spec in tenants:
        assert spec.start < spec.end
        assert spec.start_date.day == spec.end_date.day == spec.billing_day


def test_a_wrong_amount_quantity_currency_or_missing_coupon_is_reported() -> None:
    tenants, record = generated(60, hours=2)
    spec = next(t for t in tenants if t.coupon and t.coupon.amount_off)
    doc = stored(spec, record)
    assert compare(spec, doc, record) == []
    wrong_amount = copy.deepcopy(doc)
    wrong_amount["line_items"][1]["amount"] += 1
    assert any("subtotal" in p for p in compare(spec, wrong_amount, record))
    wrong_quantity = copy.deepcopy(doc)
    wrong_quantity["line_items"][1]["quantity"] += Decimal("0.000001")
    assert compare(spec, wrong_quantity, record)
    wrong_currency = dict(doc, currency="XXX")
    assert compare(spec, wrong_currency, record) == [f"{spec.tenant_id}: currency XXX != "
                                                     f"{spec.currency}"]
    no_coupon = copy.deepcopy(doc)
    no_coupon["line_items"].pop()
    assert any("discount" in p for p in compare(spec, no_coupon, record))
    assert compare(spec, None, record) == [f"{spec.tenant_id}: no invoice"]


def test_gaps_duplicates_and_tenants_without_one_invoice_are_reported() -> None:
    tenants = make_tenants(5, seed=1, exponents=EXPONENTS, shared_coupons=0)
    rows = [{"tenant_id": t.tenant_id, "invoice_number": f"INV-2026-{i + 1:04d}"}
            for i, t in enumerate(tenants)]
    assert check_numbers(rows, tenants) == []
    gap = rows[:-1] + [{"tenant_id": tenants[-1].tenant_id, "invoice_number": "INV-2026-0007"}]
    assert check_numbers(gap, tenants) == [
        "2026: numbers not gapless 1..5 (missing [5], duplicated [])"]
    twice = rows[:-1] + [{"tenant_id": tenants[0].tenant_id, "invoice_number": "INV-2026-0005"}]
    assert check_numbers(twice, tenants) == [
        f"2 tenants without exactly one invoice, e.g. [('{tenants[0].tenant_id}', 2), "
        f"('{tenants[-1].tenant_id}', 0)]"]


def test_the_estimate_refuses_a_whole_month_at_ten_thousand_tenants_and_suggests_what_fits(
) -> None:
    budget = 20 * 60
    assert estimate_seconds(10_000, 720) > budget
    hours = suggest_hours(10_000, budget)
    assert 24 <= hours < 720
    assert estimate_seconds(10_000, hours) <= budget < estimate_seconds(10_000, hours + 1)
    assert estimate_seconds(1_000, 720) <= budget
    assert suggest_hours(10**6, budget) == 0
