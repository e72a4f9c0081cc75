"""The invoice document's data: tiers recomputed from the plan that priced a line, periods as
first and last day in the tenant's zone, units and readable meter names, exact unit prices,
the subtotal before coupons and credits, and the seller from settings."""

from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import InvoiceIssued, LineItem, PriceCharge
from services.common.invoice_document import (
    Seller,
    build_document,
    period_days,
    readable_description,
    seller_of,
)
from services.common.meters import meter_of
from services.common.money_format import format_price, format_quantity
from services.common.settings import CommonSettings
from services.invoicer.document import usage_pricing
from services.invoicer.pricing import EXACT, charge_exact, usage_line

pytestmark = pytest.mark.unit

GRADUATED = PriceCharge.model_validate({
    "meter": "cpu_hours", "model": "graduated",
    "tiers": [{"up_to": "500", "unit_price": "5.00"}, {"up_to": None, "unit_price": "4.00"}]})
VOLUME = PriceCharge.model_validate({
    "meter": "bandwidth_gb", "model": "volume", "included_quantity": "10",
    "tiers": [{"up_to": "100", "unit_price": "0.10"},
              {"up_to": "1000", "unit_price": "0.08", "flat_price": "2"},
              {"up_to": None, "unit_price": "0.05"}]})
PER_UNIT = PriceCharge.model_validate({"meter": "memory_gb_hours", "model": "per_unit",
                                       "unit_price": "0.005"})


def item(charge: PriceCharge, quantity: str, currency: str = "USD") -> LineItem:
    line = usage_line(charge, Decimal(quantity), currency)
    return LineItem(kind="usage", description=line.description, meter=line.meter,
                    quantity=line.quantity, unit_price=line.unit_price, amount=line.amount)


def invoice(items: list[LineItem], currency: str = "USD", **changes: Any) -> InvoiceIssued:
    fields: dict[str, Any] = dict(
        invoice_id="inv-8", invoice_number="INV-2013-0008", tenant_id="initech",
        amount=sum(i.amount for i in items), currency=currency, issue_date=date(2013, 9, 15),
        due_date=date(2013, 9, 29), period_start=datetime(2013, 6, 14, 21, tzinfo=UTC),
        period_end=datetime(2013, 9, 14, 21, tzinfo=UTC), line_items=tuple(items),
        billing_email="billing@initech.example", email_notifications=True, config_version=1,
        timezone="Africa/Nairobi")
    fields.update(changes)
    return InvoiceIssued.model_validate(fields)


def doc_of(inv: InvoiceIssued) -> dict[str, Any]:
    return {"line_items": [li.model_dump() for li in inv.line_items], "currency": inv.currency}


def test_a_graduated_line_lists_each_tier_with_quantity_price_and_amount() -> None:
    inv = invoice([item(GRADUATED, "1043.384722222222222")])
    pricing = usage_pricing([GRADUATED], doc_of(inv))
    tiers = pricing["cpu_hours"].tiers
    assert [(t.index, t.quantity, t.unit_price) for t in tiers] == [
        (1, Decimal(500), Decimal("5.00")), (2, Decimal("543.384722222222222"), Decimal("4.00"))]
    assert sum(t.amount for t in tiers) == charge_exact(GRADUATED, Decimal("1043.384722222222222"))

    rows = build_document(inv, pricing=pricing).rows
    assert [r.detail for r in rows] == [False, True, True]
    assert rows[0].quantity == "1,043.384722222222222 vCPU-hours"
    assert rows[0].description == "CPU, graduated tiers" and rows[0].amount == "$4,673.54"
    assert (rows[1].description, rows[1].quantity, rows[1].unit_price, rows[1].amount) == (
        "Tier 1: up to 500 vCPU-hours", "500 vCPU-hours", "$5.00", "$2,500.00")
    assert (rows[2].description, rows[2].amount) == ("Tier 2: over 500 vCPU-hours", "$2,173.54")


def test_a_volume_line_prices_every_unit_at_one_tier_after_the_included_quantity() -> None:
    inv = invoice([item(VOLUME, "510")])
    pricing = usage_pricing([VOLUME], doc_of(inv))["bandwidth_gb"]
    (tier,) = pricing.tiers
    assert (tier.index, tier.quantity, tier.amount) == (2, Decimal(500), Decimal("42.00"))
    rows = build_document(inv, pricing={"bandwidth_gb": pricing}).rows
    assert [r.description for r in rows[1:]] == [
        "Included: up to 10 GB",
        "Volume tier 2 (over 100 up to 1,000 GB), every unit, plus $2.00 flat"]
    assert rows[1].quantity == "10 GB" and rows[2].amount == "$42.00" == rows[0].amount


def test_tiers_that_do_not_reproduce_the_lines_amount_are_left_out() -> None:
    inv = invoice([item(GRADUATED, "600")])
    cheaper = GRADUATED.model_copy(update={"tiers": (GRADUATED.tiers[0].model_copy(
        update={"unit_price": Decimal("1")}), GRADUATED.tiers[1])})
    assert usage_pricing([cheaper], doc_of(inv)) == {}
    assert usage_pricing([], doc_of(inv)) == {}
    assert len(build_document(inv).rows) == 1  # no plan: the line alone


@pytest.mark.parametrize(("start", "end", "zone", "first", "last"), [
    # a quarterly invoice in Nairobi (UTC+3) from 15 June: the UTC instants are the day before
    (datetime(2013, 6, 14, 21, tzinfo=UTC), datetime(2013, 9, 14, 21, tzinfo=UTC),
     "Africa/Nairobi", date(2013, 6, 15), date(2013, 9, 14)),
    # the exclusive end is not the last day
    (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC), "UTC",
     date(2024, 1, 1), date(2024, 1, 31)),
    # across a daylight-saving change (Amsterdam, end of March)
    (datetime(2013, 2, 28, 23, tzinfo=UTC), datetime(2013, 3, 31, 22, tzinfo=UTC),
     "Europe/Amsterdam", date(2013, 3, 1), date(2013, 3, 31)),
])
def test_the_period_is_its_first_and_last_day_in_the_tenants_zone(
    start: datetime, end: datetime, zone: str, first: date, last: date
) -> None:
    assert period_days(start, end, zone) == (first, last)


def test_the_document_prints_the_period_in_the_tenants_zone() -> None:
    facts = dict(build_document(invoice([item(PER_UNIT, "1")])).facts)
    assert facts["Period"] == "15 Jun 2013 - 14 Sep 2013 (Africa/Nairobi)"
    assert facts["Issue date"] == "15 Sep 2013" and facts["Due date"] == "29 Sep 2013"


@pytest.mark.parametrize(("price", "currency", "expected"), [
    ("0.04", "USD", "$0.04"), ("0.005", "USD", "$0.005"), ("29", "USD", "$29.00"),
    ("5.00", "KES", "KES 5.00"), ("0.0045", "EUR", "€0.0045"), ("1500", "JPY", "¥1,500"),
])
def test_unit_prices_read_like_amounts_and_stay_exact(price: str, currency: str,
                                                      expected: str) -> None:
    assert format_price(Decimal(price), currency) == expected


def test_quantities_keep_every_digit_and_carry_their_meters_unit() -> None:
    assert format_quantity(Decimal("1043.38472200"), "vCPU-hours") == "1,043.384722 vCPU-hours"
    assert format_quantity(Decimal("5E+2"), "GB") == "500 GB"
    assert format_quantity(Decimal(0)) == "0"
    assert [meter_of(k).name for k in ("cpu_hours", "memory_gb_hours", "bandwidth_gb")] == [
        "CPU", "Memory", "Bandwidth"]
    assert (meter_of("gpu_minutes").name, meter_of("gpu_minutes").unit) == ("gpu_minutes",
                                                                            "units")


def test_meter_keys_become_names_in_descriptions() -> None:
    assert readable_description(item(PER_UNIT, "1")) == "Memory"
    late = LineItem(kind="adjustment", description="Late usage of cpu_hours for 2013-06",
                    meter="cpu_hours", amount=10, quantity=Decimal("2"))
    assert readable_description(late) == "Late usage of CPU for 2013-06"
    included = PER_UNIT.model_copy(update={"included_quantity": Decimal(100)})
    assert readable_description(item(included, "1")) == "Memory, 100 GB-hours included"


def test_the_subtotal_comes_before_the_coupon_and_credits() -> None:
    items = [LineItem(kind="flat_fee", description="Flat fee", amount=4900,
                      unit_price=Decimal("49.00")), item(PER_UNIT, "2000"),
             LineItem(kind="coupon", description="Coupon WELCOME", amount=-500),
             LineItem(kind="credit", description="Credit: goodwill", amount=-2500)]
    document = build_document(invoice(items))
    assert document.subtotal == "$59.00"
    assert document.reductions == (("Coupon WELCOME", "-$5.00"),
                                   ("Credit: goodwill", "-$25.00"))
    assert document.total == "$29.00"
    assert [r.description for r in document.rows] == ["Flat fee", "Memory"]
    assert document.rows[0].unit_price == "$49.00"


def test_the_seller_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_SELLER_NAME", "Cloud Co Ltd")
    monkeypatch.setenv("BILLING_SELLER_ADDRESS", "1 Main St\n\nNairobi 00100\n")
    monkeypatch.setenv("BILLING_SELLER_TAX_ID", "KE-P051234567X")
    seller = seller_of(CommonSettings())
    assert seller == Seller("Cloud Co Ltd", "1 Main St\n\nNairobi 00100\n", "KE-P051234567X")
    assert seller.address_lines() == ["1 Main St", "Nairobi 00100"]
    assert seller_of(CommonSettings(_env_file=None, seller_name="X")).name == "X"


def _reference_exact(charge: PriceCharge, quantity: Decimal) -> Decimal:
    """The graduated and volume arithmetic as the invoicer priced before tiers were shown."""
    billable = max(Decimal(0), quantity - charge.included_quantity)
    if billable == 0:
        return Decimal(0)
    if charge.model == "graduated":
        total, lower = Decimal(0), Decimal(0)
        for tier in charge.tiers:
            upper = billable if tier.up_to is None else min(billable, tier.up_to)
            if upper > lower:
                total += (upper - lower) * tier.unit_price + tier.flat_price
            if tier.up_to is None or billable <= tier.up_to:
                break
            lower = tier.up_to
        return total
    tier = next(t for t in charge.tiers if t.up_to is None or billable <= t.up_to)
    return billable * tier.unit_price + tier.flat_price


@settings(max_examples=200, deadline=None)
@given(quantity=st.decimals(min_value=0, max_value=100_000, places=6),
       model=st.sampled_from(["graduated", "volume"]),
       included=st.sampled_from(["0", "10", "250.5"]))
def test_tiers_add_up_to_the_amount_the_invoicer_always_charged(
    quantity: Decimal, model: str, included: str
) -> None:
    charge = PriceCharge.model_validate({
        "meter": "cpu_hours", "model": model, "included_quantity": included,
        "tiers": [{"up_to": "100", "unit_price": "0.05", "flat_price": "1"},
                  {"up_to": "1000", "unit_price": "0.04"},
                  {"up_to": None, "unit_price": "0.025", "flat_price": "3"}]})
    with localcontext(EXACT):
        expected = _reference_exact(charge, quantity)
    assert charge_exact(charge, quantity) == expected
    inv = invoice([item(charge, str(quantity))])
    pricing = usage_pricing([charge], doc_of(inv))["cpu_hours"]
    assert sum((t.amount for t in pricing.tiers), Decimal(0)) == expected
