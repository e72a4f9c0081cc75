"""The tenant pages' pure parts: the Usage page's anchored window, the SVG charts and the
views built from the API's models (docs/portal.md, "Tenant pages")."""

from datetime import UTC, date, datetime, timedelta

import pytest

from services.api.models_reads import (
    InvoiceDetail,
    LineItemView,
    MeterUsage,
    Money,
    ServiceUsage,
    TimelineEvent,
    UsageView,
)
from services.api.portal import tenant_views as views
from services.api.portal.charts import Bar, Slice, bar_chart, pie_chart
from services.api.portal.usage_range import anchored_window

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 22, 12, 30, tzinfo=UTC)


def usd(amount: int) -> Money:
    return Money.of(amount, "USD")


def test_a_preset_with_usage_is_not_moved() -> None:
    window = anchored_window("last_7_days", NOW, "UTC", NOW - timedelta(days=2))
    assert (window.start, window.end, window.anchored) == (NOW - timedelta(days=7), NOW, False)
    assert not anchored_window("last_7_days", NOW, "UTC", None).anchored


def test_a_preset_without_usage_is_anchored_at_the_end_of_the_newest_hour() -> None:
    newest = datetime(2013, 7, 31, 23, tzinfo=UTC)
    window = anchored_window("last_7_days", NOW, "UTC", newest)
    assert window.anchored and window.end == datetime(2013, 8, 1, tzinfo=UTC)
    assert window.start == datetime(2013, 7, 25, tzinfo=UTC)
    month = anchored_window("last_month", NOW, "Africa/Nairobi", newest)
    # 23:00 UTC is 02:00 on 1 August in Nairobi: last month is July there
    assert month.anchored and month.start == datetime(2013, 6, 30, 21, tzinfo=UTC)
    assert month.end == datetime(2013, 7, 31, 21, tzinfo=UTC)
    edge = anchored_window("last_90_days", NOW, "UTC", NOW - timedelta(days=90, hours=1))
    assert edge.anchored and edge.end == NOW - timedelta(days=90)


def test_charts_are_labelled_images_whose_texts_are_escaped() -> None:
    bars = bar_chart("Cost <by> meter", [Bar("CPU", 613, "$6.13"), Bar("<b>", 0, "$0.00")])
    assert bars.startswith("<svg") and 'role="img"' in bars
    assert "<title" in bars and "Cost &lt;by&gt; meter" in bars
    assert "&lt;b&gt;" in bars and "<b>" not in bars and "$6.13" in bars
    pie = pie_chart("Invoices by status", [Slice("Paid", 3, "3", "paid"),
                                           Slice("Unpaid", 1, "1", "pending_payment"),
                                           Slice("Overdue", 0, "0", "overdue")])
    assert pie.count("<path") == 2 and "Paid: 3 (75%)" in pie and "Overdue: 0 (0%)" in pie
    whole = pie_chart("Invoices by status", [Slice("Paid", 2, "2", "paid")])
    assert "<path" not in whole and 'class="slice slice-paid"' in whole
    empty = pie_chart("Invoices by status", [Slice("Paid", 0, "0", "paid")])
    assert "no invoices" in empty and "slice-empty" in empty


def _invoice() -> InvoiceDetail:
    at = datetime(2013, 6, 30, 22, tzinfo=UTC)
    return InvoiceDetail(
        invoice_number="INV-2013-0001", tenant_id="initech", status="paid", total=usd(1060),
        issue_date=date(2013, 7, 1), due_date=date(2013, 7, 1), paid_date=date(2013, 7, 1),
        period_start=datetime(2013, 5, 31, 21, tzinfo=UTC),
        period_end=datetime(2013, 6, 30, 21, tzinfo=UTC), tenant_name="Initech",
        timezone="Africa/Nairobi",
        line_items=[
            LineItemView(kind="flat_fee", description="Flat fee", meter=None, quantity="1",
                         unit=None, unit_price=None, amount=usd(1000)),
            LineItemView(kind="usage", description="cpu_hours (per unit)", meter="cpu_hours",
                         quantity="1043.38470000", unit="vCPU-hours", unit_price="0.005",
                         amount=usd(522)),
            LineItemView(kind="credit", description="Credit", meter=None, quantity="1",
                         unit=None, unit_price=None, amount=usd(-462)),
        ],
        subtotal=usd(1522), reductions=usd(-462), refunded=usd(0),
        timeline=[TimelineEvent(event="issued", at=at, status="pending_payment"),
                  TimelineEvent(event="status_changed", at=at + timedelta(hours=1),
                                status="paid", cause="pay-1")],
        payment_reference="pi_1", payment_method="card visa 4242", config_version=1)


def test_invoice_views_read_in_the_tenant_zone_with_readable_lines() -> None:
    invoice = _invoice()
    rows = views.timeline(invoice, "en_US")
    # issued at 01:00 on 1 July in Nairobi; the due date of the same day comes after
    assert [(r.label, r.when) for r in rows] == [
        ("Issued", "Jul 1, 2013, 1:00\u202fAM"), ("Paid", "Jul 1, 2013, 2:00\u202fAM"),
        ("Due", "Jul 1, 2013")]
    lines = views.line_rows(invoice, "en_US")
    assert [(li.description, li.quantity, li.unit_price, li.amount) for li in lines] == [
        ("Flat fee", "", "", "$10.00"),
        ("CPU (per unit)", "1,043.3847 vCPU-hours", "$0.005", "$5.22"),
        ("Credit", "", "", "-$4.62")]
    assert views.period_days(invoice.period_start, invoice.period_end, invoice.timezone,
                             "en_US") == ("Jun 1, 2013", "Jun 30, 2013")


def test_usage_by_service_splits_each_meter_cost_to_the_exact_total() -> None:
    view = UsageView(
        tenant_id="acme", start=NOW - timedelta(days=7), end=NOW, as_of=None,
        config_version=1, estimated_total=usd(1001), flat_fee=None,
        meters=[MeterUsage(meter="cpu_hours", unit="vCPU-hours", quantity="3",
                           estimated_cost=usd(1000), priced=True,
                           services=[ServiceUsage(service=s, quantity="1", events=1)
                                     for s in ("a", "b", "c")]),
                MeterUsage(meter="storage_gb", unit="GB", quantity="0",
                           estimated_cost=usd(1), priced=True, services=[])])
    rows = views.service_rows(view, "en_US")
    assert [(r.service, r.meter, r.quantity, r.cost) for r in rows] == [
        ("a", "CPU", "1 vCPU-hours", "$3.34"), ("b", "CPU", "1 vCPU-hours", "$3.33"),
        ("c", "CPU", "1 vCPU-hours", "$3.33"), ("All services", "Storage", "0 GB", "$0.01")]
    cards = views.usage_cards(view, "en_US")
    assert [(c.testid, c.quantity, c.cost, c.priced) for c in cards] == [
        ("card-cpu", "3 vCPU-hours", "$10.00", True),
        ("card-memory", "0 GB-hours", "$0.00", False),
        ("card-storage", "0 GB average", "$0.01", True),
        ("card-bandwidth", "0 GB", "$0.00", False)]
