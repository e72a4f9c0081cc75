"""The billing cycle against MongoDB: exactly one invoice per tenant and period, gapless
numbers in issue order, coupons, credits, late usage as adjustments, overdue, payments."""

import asyncio
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from contracts import InvoiceIssued, InvoiceStatusChanged, PaymentFailed, PaymentSucceeded
from services.common.settings import CommonSettings
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.cycle import issue_invoice, tenant_periods
from services.invoicer.handlers import apply_config, apply_payment
from services.invoicer.names import OUTBOX
from services.invoicer.reports import dashboard, export_invoices, list_invoices, totals
from services.invoicer.schedule import issue_for_period_end, next_due, run_cycle
from tests.integration.test_invoicer_support import (
    add_usage,
    collect_usage,
    config,
    open_store,
    utc,
)

pytestmark = pytest.mark.integration


async def outbox_events(store: InvoicerStore) -> list[dict[str, Any]]:
    entries = await store.db[OUTBOX].find({}).sort("seq", 1).to_list()
    return [{"type": e["type"], **json.loads(e["payload"])} for e in entries]


async def test_the_cycle_issues_each_due_period_once_with_gapless_numbers_in_issue_order(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme"))
        await apply_config(store, config("globex", effective_from="2013-06-30",
                                         settings={"billing_day_of_month": 31}))
        await apply_config(store, config("umbrella", settings={"auto_generate_invoices": False}))
        await add_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 30, 22), "10")
        await add_usage(store.db, "acme", "cpu_hours", "db", utc(2013, 6, 30, 23), "2.5")

        first = await run_cycle(store, utc(2013, 8, 1))
        again = await run_cycle(store, utc(2013, 8, 1))

        assert first.issued == ["INV-2013-0001", "INV-2013-0002", "INV-2013-0003"]
        assert again.issued == []
        docs = await list_invoices(store)
        assert [(d["tenant_id"], d["issue_date"]) for d in docs] == [
            ("acme", "2013-07-01"), ("globex", "2013-07-31"), ("acme", "2013-08-01")]
        june = docs[0]
        assert june["amount"] == 1000 + 625
        usage = [li for li in june["line_items"] if li["kind"] == "usage"]
        assert [(li["meter"], li["quantity"], li["amount"]) for li in usage] == [
            ("cpu_hours", Decimal("12.5"), 625)]
        assert june["due_date"] == "2013-07-15" and june["config_version"] == 1
        issued = [e for e in await outbox_events(store) if e["type"] == "InvoiceIssued"]
        assert len(issued) == 3 and issued[0]["event_id"] == "invoice-issued:acme:2013-06-01"
        assert InvoiceIssued.model_validate(
            {k: v for k, v in issued[0].items() if k != "type"}).occurred_at == utc(2013, 7, 1)

        number = await issue_for_period_end(store, "umbrella", utc(2013, 7, 1).date())
        assert number == "INV-2013-0004"
        assert await issue_for_period_end(store, "umbrella", utc(2013, 7, 1).date()) is None


@pytest.mark.parametrize("batch_size", [200, 3])
async def test_two_cycles_running_at_once_issue_no_duplicate_and_leave_no_gap(
    common_settings: CommonSettings, batch_size: int,
) -> None:
    async with open_store(common_settings) as setup:
        for n in range(4):
            await apply_config(setup, config(f"tenant{n}"))
    async with open_store(common_settings) as a, open_store(common_settings) as b:
        reports = await asyncio.gather(run_cycle(a, utc(2013, 9, 1), batch_size),
                                       run_cycle(b, utc(2013, 9, 1), batch_size))
        issued = reports[0].issued + reports[1].issued
        assert sorted(issued) == [f"INV-2013-{n:04d}" for n in range(1, 13)]
        assert len(await list_invoices(a)) == 12
        assert await a.db[OUTBOX].count_documents({"type": "InvoiceIssued"}) == 12


async def test_a_once_coupon_and_a_goodwill_credit_reduce_the_right_invoices(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, config(
            "hooli", settings={"flat_rate_amount": 1900},
            coupon={"code": "HooliWelcome5x", "amount_off": 500, "duration": "once"},
            credits=[{"credit_id": "c1", "amount": 2500, "granted_at": "2013-07-15T09:30:00Z",
                      "granted_by": "ops-admin", "reason": "goodwill after the outage"}],
        ))
        await run_cycle(store, utc(2013, 10, 1))
        amounts = [(d["amount"], [li["kind"] for li in d["line_items"]])
                   for d in await list_invoices(store)]
        assert amounts == [
            (1400, ["flat_fee", "usage", "coupon"]),  # issued 1 Jul: first invoice, coupon
            (0, ["flat_fee", "usage", "credit"]),     # 1 Aug: 19.00 of the 25.00 credit
            (1300, ["flat_fee", "usage", "credit"]),  # 1 Sep: the remaining 6.00
            (1900, ["flat_fee", "usage"]),            # 1 Oct: nothing left
        ]


async def test_a_late_usage_event_becomes_an_adjustment_on_the_next_invoice(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme"))
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 10, 5), "4")
        await run_cycle(store, utc(2013, 7, 1))
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 20, 5), "3.01")
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 7, 2, 5), "1")

        await run_cycle(store, utc(2013, 8, 1))
        await run_cycle(store, utc(2013, 9, 1))

        june, july, august = await list_invoices(store)
        assert june["amount"] == 1000 + 200
        adjustment = [li for li in july["line_items"] if li["kind"] == "adjustment"]
        assert [(li["meter"], li["quantity"], li["amount"]) for li in adjustment] == [
            ("cpu_hours", Decimal("3.01"), 151)]  # 7.01 x 0.50 = 3.505 -> 3.51, billed 2.00
        assert july["amount"] == 1000 + 50 + 151
        assert not [li for li in august["line_items"] if li["kind"] == "adjustment"]


async def test_payments_move_invoices_forward_only_and_overdue_follows_the_due_date(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme", timezone="America/Los_Angeles",
                                         settings={"payment_due_days": 60}))
        await run_cycle(store, utc(2013, 8, 1, 7))  # 1 Aug 00:00 in Los Angeles
        june, july = await list_invoices(store)

        def paid(inv: dict[str, Any], eid: str) -> PaymentSucceeded:
            return PaymentSucceeded(
                event_id=eid, invoice_id=inv["_id"], invoice_number=inv["invoice_number"],
                tenant_id="acme", amount=inv["amount"], currency="USD",
                payment_reference="pi_1", payment_method="card visa 4242",
                paid_at=utc(2013, 7, 1, 3))

        def failed(inv: dict[str, Any], eid: str) -> PaymentFailed:
            return PaymentFailed(
                event_id=eid, invoice_id=inv["_id"], invoice_number=inv["invoice_number"],
                tenant_id="acme", amount=inv["amount"], currency="USD",
                failure_message="Your card was declined.", attempt=1)

        assert await apply_payment(store, paid(june, "p1")) == "paid"
        assert await apply_payment(store, paid(june, "p1")) is None  # same event: no effect
        assert await apply_payment(store, failed(june, "f1")) is None  # late failure
        assert await apply_payment(store, failed(july, "f2")) == "failed"
        assert await apply_payment(store, failed(july, "f3")) is None

        # July's invoice is due 30 Sep; overdue once the clock passes the end of that day in LA.
        due_end = utc(2013, 10, 1, 7)
        assert await next_due(store, utc(2013, 8, 1, 7)) == utc(2013, 9, 1, 7)  # next period end
        assert (await run_cycle(store, due_end - timedelta(seconds=1))).overdue == []
        assert (await run_cycle(store, due_end)).overdue == [july["_id"]]
        assert await apply_payment(store, failed(july, "f4")) is None  # stays overdue
        assert await apply_payment(store, paid(july, "p2")) == "paid"  # overdue -> paid

        june, july, august, september = await list_invoices(store)
        assert (june["status"], june["paid_date"], june["payment_reference"]) == (
            "paid", "2013-06-30", "pi_1")  # paid_at 03:00 UTC is 30 Jun in Los Angeles
        assert july["status"] == "paid" and august["status"] == "pending_payment"
        changes = [InvoiceStatusChanged.model_validate({k: v for k, v in e.items() if k != "type"})
                   for e in await outbox_events(store) if e["type"] == "InvoiceStatusChanged"]
        assert [(c.invoice_id, c.previous_status, c.status) for c in changes] == [
            (june["_id"], "pending_payment", "paid"), (july["_id"], "pending_payment", "failed"),
            (july["_id"], "failed", "overdue"), (july["_id"], "overdue", "paid")]
        assert changes[2].occurred_at == due_end

        view = totals(await list_invoices(store, "acme"))
        assert view["total_invoices"] == 4 and view["outstanding_balance"] == {"USD": 2000}
        board = await dashboard(store, utc(2013, 6, 30, 12))
        assert board["monthly_revenue"] == {"USD": 2000} and board["pending_invoices"] == 2

    exported = await export_invoices(common_settings)
    assert exported[0]["period_start"] == "2013-06-01T00:00:00-07:00"
    assert exported[0]["line_items"][0] == {
        "kind": "flat_fee", "meter": None, "description": "Flat fee", "quantity": "1",
        "unit_price": "10.00", "amount": 1000}


async def test_two_issuances_of_one_tenant_at_once_bill_late_usage_exactly_once(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as a, open_store(common_settings) as b:
        await apply_config(a, config("acme"))
        await collect_usage(a.db, "acme", "cpu_hours", "web", utc(2013, 6, 10, 5), "4")
        await run_cycle(a, utc(2013, 7, 1))  # June: 4 x 0.50 = 2.00
        await collect_usage(a.db, "acme", "cpu_hours", "web", utc(2013, 6, 20, 5), "6")
        _, july, august = tenant_periods(config("acme"), utc(2013, 9, 1))

        numbers = await asyncio.gather(issue_invoice(a, "acme", july),
                                       issue_invoice(b, "acme", august))

        assert sorted(n for n in numbers if n) == ["INV-2013-0002", "INV-2013-0003"]
        adjustments = [(li["meter"], li["quantity"], li["amount"])
                       for d in await list_invoices(a) for li in d["line_items"]
                       if li["kind"] == "adjustment"]
        assert adjustments == [("cpu_hours", Decimal(6), 300)], "billed exactly once"
        june = await a.billed.find_one({"tenant_id": "acme", "period_start": utc(2013, 6, 1)})
        assert june is not None
        assert (june["quantity"], june["amount"], june["rev"]) == (Decimal(10), 500, 1)


async def test_late_usage_is_found_even_when_the_collector_clock_lags_the_invoicer(
    common_settings: CommonSettings,
) -> None:
    from contracts.base import utc_now

    # the collector's host clock is an hour behind the invoicer's: its bucket time stamps
    # look old, although the late event below is committed after June was priced
    def lagging() -> datetime:
        return utc_now() - timedelta(hours=1)

    async with open_store(common_settings) as store:
        await apply_config(store, config("acme"))
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 10, 5), "4",
                            clock=lagging)
        await run_cycle(store, utc(2013, 7, 1))
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 20, 5), "2",
                            clock=lagging)

        await run_cycle(store, utc(2013, 8, 1))

        _, july = await list_invoices(store)
        assert [(li["kind"], li["quantity"], li["amount"]) for li in july["line_items"]
                if li["kind"] == "adjustment"] == [("adjustment", Decimal(2), 100)]


async def test_a_negative_adjustment_larger_than_the_invoice_carries_a_credit_balance(
    common_settings: CommonSettings,
) -> None:
    plan = {"charges": [{"meter": "storage_gb", "model": "per_unit", "unit_price": "0.10"}]}
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme", price_plan=plan))
        await collect_usage(store.db, "acme", "storage_gb", "web", utc(2013, 6, 10, 5), "1000")
        await run_cycle(store, utc(2013, 7, 1))  # June: 10.00 + avg 1000 GB x 0.10 = 110.00
        # a late sample of 0 GB halves June's average: June is worth 50.00 less
        await collect_usage(store.db, "acme", "storage_gb", "web", utc(2013, 6, 11, 5), "0")

        await run_cycle(store, utc(2013, 10, 1))

        june, july, august, september = await list_invoices(store)
        assert june["amount"] == 11000
        assert [(li["kind"], li["amount"]) for li in july["line_items"]] == [
            ("flat_fee", 1000), ("usage", 0), ("adjustment", -1000)]
        assert [(li["kind"], li["amount"]) for li in august["line_items"]] == [
            ("flat_fee", 1000), ("usage", 0), ("credit", -1000)]
        assert (july["amount"], august["amount"], september["amount"]) == (0, 0, 0)
        billed = await store.billed.find_one({"tenant_id": "acme",
                                              "period_start": utc(2013, 6, 1)})
        assert billed is not None and (billed["quantity"], billed["amount"]) == (
            Decimal(500), 5000), "the billed quantity keeps its full amount"
        tenant = await store.tenant("acme")
        assert tenant is not None
        (carried,) = tenant["credit_balance"]
        assert carried["amount"] == 4000 and "storage_gb" in carried["reason"]
        assert carried["source_invoice"] == july["invoice_number"]
        used = {c["credit_id"]: c["used"] for c in tenant["credits_used"]}
        assert used[carried["credit_id"]] == 2000  # August and September took 10.00 each


async def test_a_coupon_max_redemptions_counts_across_all_tenants(
    common_settings: CommonSettings,
) -> None:
    coupon = {"code": "SharedOnce7x", "amount_off": 300, "duration": "forever",
              "max_redemptions": 1}
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme", coupon=coupon))
        await apply_config(store, config("globex", coupon=coupon))

        await run_cycle(store, utc(2013, 8, 1))

        coupons = [(d["tenant_id"], [li["amount"] for li in d["line_items"]
                                     if li["kind"] == "coupon"])
                   for d in await list_invoices(store)]
        assert coupons == [("acme", [-300]), ("globex", []), ("acme", [-300]), ("globex", [])]
        counted = await store.db["invoicer_coupon_redemptions"].find_one({"_id": "SharedOnce7x"})
        assert counted is not None and counted["redemptions"] == 1
        assert counted["tenants"] == ["acme"]


async def test_two_tenants_issued_at_once_cannot_both_take_the_last_redemption(
    common_settings: CommonSettings,
) -> None:
    coupon = {"code": "SharedLast9x", "amount_off": 300, "duration": "once",
              "max_redemptions": 1}
    async with open_store(common_settings) as a, open_store(common_settings) as b:
        for tenant in ("acme", "globex"):
            await apply_config(a, config(tenant, coupon=coupon))
        (june,) = tenant_periods(config("acme"), utc(2013, 7, 1))

        await asyncio.gather(issue_invoice(a, "acme", june), issue_invoice(b, "globex", june))

        reduced = [d["tenant_id"] for d in await list_invoices(a)
                   if any(li["kind"] == "coupon" for li in d["line_items"])]
        assert len(reduced) == 1


async def test_usage_is_summed_across_services_beyond_28_digits_and_kept_as_decimal128(
    common_settings: CommonSettings,
) -> None:
    from decimal import Context, localcontext

    from services.usage_collector.api import usage_totals

    plan = {"charges": [{"meter": "storage_gb", "model": "per_unit", "unit_price": "0.10"}]}
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme", price_plan=plan))
        for service, samples in (("web", ["1", "1", "2"]), ("db", ["1000", "1000", "1001"])):
            for hour, gb in enumerate(samples):  # averages of 4/3 and 3001/3 GB
                await collect_usage(store.db, "acme", "storage_gb", service,
                                    utc(2013, 6, 10, hour), gb)

        await run_cycle(store, utc(2013, 7, 1))

        (june,) = await list_invoices(store)
        per_service = await usage_totals(store.db, "acme", utc(2013, 6, 1), utc(2013, 7, 1))
        with localcontext() as wide:
            wide.prec = 100
            exact = sum((t.quantity for t in per_service), Decimal(0))
        stored = Context(prec=34).create_decimal(exact)  # Decimal128, rounded once half-even
        assert str(stored) == "1001.666666666666666666666666666666"
        assert june["usage"] == [{"meter": "storage_gb", "quantity": stored}]
        assert june["amount"] == 1000 + 10017  # 100.1666... GB-months x 0.10 -> 100.17
