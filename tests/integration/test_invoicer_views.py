"""The invoicer's read views on MongoDB: tenant summaries and paging, the configuration with
its history and submission outcomes, invoice paging and timelines, balances, the usage
estimate (equal to the issued invoice's usage lines) and the dashboard's reconciliation."""

from decimal import Decimal

import pytest

from services.common.settings import CommonSettings
from services.invoicer import estimate, views
from tests.integration.reads_support import seed
from tests.integration.test_invoicer_support import open_store, utc

pytestmark = pytest.mark.integration


async def test_read_views_over_seeded_tenants_and_invoices(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        seeded = await seed(store)
        db = store.db

        first = await views.tenant_rows(db, limit=2)
        rest = await views.tenant_rows(db, after=first[-1]["tenant_id"], limit=2)
        assert [t["tenant_id"] for t in first + rest] == ["acme", "globex", "umbrella"]
        assert [t["tenant_id"] for t in await views.tenant_rows(db, q="GLOB")] == ["globex"]
        acme = await views.tenant_summary(db, "acme")
        assert acme is not None and await views.tenant_summary(db, "nobody") is None
        july_number = seeded.numbers[("acme", "2013-08-01")]
        july = await views.invoice(db, july_number)
        assert july is not None
        assert acme["outstanding"] == {"USD": july["amount"]} and acme["overdue_count"] == 0
        assert (acme["currency"], acme["timezone"], acme["config_version"]) == ("USD", "UTC", 1)

        conf = await views.billing_config(db, "acme", utc(2013, 8, 1))
        assert conf is not None and conf["in_force"]["version"] == 1
        assert conf["in_force"]["settings"]["flat_rate_amount"] == 1000
        assert [h["version"] for h in conf["history"]] == [1]
        assert conf["submissions"][seeded.applied_event_id]["outcome"] == "applied"
        refused = conf["submissions"][seeded.refused_event_id]
        assert (refused["outcome"], refused["reason"]) == ("refused", "forbidden")

        page = await views.invoice_rows(db, tenant_id="acme", limit=1)
        more = await views.invoice_rows(db, tenant_id="acme", after=page[-1]["invoice_number"])
        assert [d["issue_date"] for d in page + more] == ["2013-07-01", "2013-08-01"]
        assert [d["tenant_id"] for d in await views.invoice_rows(db, status="paid")] == ["acme"]
        with pytest.raises(ValueError, match="status"):
            await views.invoice_rows(db, status="open")
        june = page[0]
        assert [(e["event"], e["status"], e["at"]) for e in views.timeline(june)] == [
            ("issued", "pending_payment", utc(2013, 7, 1)),
            ("status_changed", "overdue", utc(2013, 7, 16)),
            ("status_changed", "paid", utc(2013, 7, 2, 3))]
        assert (await views.invoice_pdf(june)).startswith(b"%PDF")

        balance = await views.balance(db, "acme")
        assert balance["total_paid"] == {"USD": june["amount"]}
        assert balance["total_invoices"] == 2


async def test_usage_estimate_of_an_invoiced_period_equals_its_usage_lines(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        seeded = await seed(store)
        june = await views.invoice(store.db, seeded.numbers[("acme", "2013-07-01")])
        assert june is not None
        view = await estimate.usage_estimate(store.db, "acme", june["period_start"],
                                             june["period_end"], now=utc(2013, 8, 15))
        assert view is not None
        lines = {li["meter"]: li for li in june["line_items"] if li["kind"] == "usage"}
        assert {m["meter"]: m["estimated_cost"] for m in view["meters"]} == {
            meter: li["amount"] for meter, li in lines.items()}
        assert {m["meter"]: m["quantity"] for m in view["meters"]} == {
            "cpu_hours": Decimal("12.25"), "memory_gb_hours": Decimal("13.5")}
        assert view["estimated_total"] == sum(li["amount"] for li in lines.values())
        cpu = next(m for m in view["meters"] if m["meter"] == "cpu_hours")
        assert cpu["unit"] == "vCPU-hours"
        assert {s["service"]: s["quantity"] for s in cpu["services"]} == {
            "db": Decimal("2.25"), "web": Decimal("10")}
        assert view["as_of"] == utc(2013, 6, 20, 23)
        assert view["flat_fee"]["amount"] == 1000
        assert view["flat_fee"]["period_start"] == utc(2013, 8, 1)
        assert await estimate.usage_estimate(store.db, "nobody", june["period_start"],
                                             june["period_end"], now=utc(2013, 8, 15)) is None


async def test_dashboard_reconciles_aggregated_and_billed_usage(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await seed(store)
        view = await estimate.dashboard_view(store.db, utc(2013, 8, 10))
        assert view["total_tenants"] == 3 and view["pending_invoices"] >= 1
        assert view["open_billing_errors"] == []
        rows = {r["tenant_id"]: r for r in view["reconciliation"]}
        acme = rows["acme"]
        assert acme["current"]["events_aggregated"] == 0
        last = acme["last_invoiced"]
        assert last["events_aggregated"] == 2
        assert last["quantity_billed"] == last["quantity_aggregated"] == {
            "cpu_hours": Decimal("1"), "memory_gb_hours": Decimal("0")}
        assert rows["umbrella"]["current"]["period_start"] == utc(2013, 8, 1)
