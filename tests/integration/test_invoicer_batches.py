"""The invoice run issues due periods in batches (docs/invoicing.md, "The invoice run"): the
same invoices, numbers, ledgers, billed records and events as issuing them one by one; one
tenant that cannot be priced stops nobody else; a batch whose transaction fails is issued one
by one without losing, duplicating or skipping a number."""

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from contracts.usage import UsageData, UsageRecorded
from services.common.settings import CommonSettings
from services.invoicer import invoice_run
from services.invoicer.adapters import batch_issuing
from services.invoicer.adapters.batch_reads import BatchReads, read_batch
from services.invoicer.adapters.billing_errors import open_billing_errors
from services.invoicer.adapters.ledger import COUPON_REDEMPTIONS
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.handlers import apply_config
from services.invoicer.names import OUTBOX
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from services.usage_collector.api import record_usage
from tests.integration.invoice_run_support import (
    batched_invoices,
    one_by_one,
    outcome,
    restore,
    snapshot,
)
from tests.integration.test_invoicer_support import collect_usage, config, open_store, utc
from tests.integration.test_subscriptions_support import PRO, STARTER, start_on_starter, subscribe

pytestmark = pytest.mark.integration
SHARED = {"code": "SharedLast9x", "amount_off": 300, "duration": "forever",
          "max_redemptions": 1}
CREDIT = {"credit_id": "goodwill", "amount": 2500, "granted_at": "2026-05-15T09:30:00Z",
          "granted_by": "ops-admin", "reason": "goodwill after the outage"}


def plan(unit_price: str) -> dict[str, Any]:
    return {"charges": [{"meter": "cpu_hours", "model": "per_unit", "unit_price": unit_price}]}


async def seed_mix(store: InvoicerStore) -> None:
    """Tenants of every kind the run must price the same either way, April's invoices issued
    (1 May), then late usage of April: see the test below."""
    await start_on_starter(store, STARTER, PRO)  # acme: subscribed on 1 April
    await apply_config(store, config("b-usd", effective_from="2026-04-01", credits=[CREDIT],
                                     coupon={"code": "Welcome5x", "amount_off": 500,
                                             "duration": "once"}))
    await apply_config(store, config(
        "c-jpy", effective_from="2026-04-01", timezone="Asia/Kolkata", price_plan=plan("3"),
        settings={"currency": "JPY", "flat_rate_amount": 5000, "billing_frequency": "quarterly"}))
    await apply_config(store, config(
        "d-bhd", effective_from="2025-07-01", timezone="Asia/Kathmandu", price_plan=plan("0.125"),
        settings={"currency": "BHD", "flat_rate_amount": 12345,
                  "billing_frequency": "annually"}))
    await apply_config(store, config(  # a stub 5..20 May, then 20 May..20 June
        "e-eur", effective_from="2026-05-05", timezone="Australia/Eucla",
        settings={"currency": "EUR", "billing_day_of_month": 20}))
    await apply_config(store, config("f-late", effective_from="2026-04-01"))
    for tenant in ("g-first", "h-second"):  # both want the last redemption of one code
        await apply_config(store, config(tenant, effective_from="2026-05-01", coupon=SHARED))
    hours = [utc(2026, 4, 10, 3), utc(2026, 5, 12, 7), utc(2026, 6, 3, 23)]
    for n, tenant in enumerate(("acme", "b-usd", "c-jpy", "d-bhd", "e-eur", "f-late",
                                "g-first", "h-second")):
        for hour in hours:
            await collect_usage(store.db, tenant, "cpu_hours", "web", hour, f"{n + 1}.5")
    assert (await run_cycle(store, utc(2026, 5, 1))).failed == []
    await collect_usage(store.db, "f-late", "cpu_hours", "web", utc(2026, 4, 20), "4")
    assert await subscribe(store, "change", utc(2026, 5, 11, 12), "pro") == "upgraded"


async def test_batches_issue_exactly_what_issuing_one_by_one_issues(
    common_settings: CommonSettings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(invoice_run, "READ_BATCHES", 2)  # usage read ahead of later batches
    as_of = utc(2026, 7, 2)
    async with open_store(common_settings) as store:
        await seed_mix(store)
        before = await snapshot(store)
        reference = await one_by_one(store, as_of)
        expected = await outcome(store)
        await restore(store, before)

        batched = batched_invoices()
        report = await run_cycle(store, as_of, batch_size=4)

        assert report.issued == reference.issued and len(report.issued) == 14
        assert report.failed == reference.failed == []
        assert batched_invoices() - batched >= 10, "most went through batch transactions"
        assert await outcome(store) == expected
        docs = {d["_id"]: d for d in await list_invoices(store)}
        assert [li["kind"] for li in docs["f-late:2026-05-01"]["line_items"]] == [
            "flat_fee", "usage", "adjustment"]
        assert "proration" in [li["kind"] for li in docs["acme:2026-05-01"]["line_items"]]
        assert [d["tenant_id"] for d in docs.values()
                if any(li["kind"] == "coupon" for li in d["line_items"])
                and d["issue_date"] > "2026-05-01"] == ["g-first", "g-first"]
        assert {docs["c-jpy:2026-04-01"]["currency"], docs["d-bhd:2025-07-01"]["currency"]} == {
            "JPY", "BHD"}


async def collect_huge(db: Any, tenant_id: str, at: datetime) -> None:
    """A `cpu_hours` event too large to be priced in int64 cents, through the collector's
    own store (only the wire validation that would refuse it is bypassed)."""
    event = UsageRecorded.model_construct(
        specversion="1.0", id=f"{tenant_id}-huge", source="test", type="billing.usage",
        subject=tenant_id, time=at,
        data=UsageData.model_construct(meter="cpu_hours", quantity=Decimal("1E+20"),
                                       service="web", resource_id=None, aggregation=None))
    await record_usage(db, [event])  # type: ignore[arg-type]


async def test_a_tenant_that_cannot_be_priced_in_a_batch_stops_only_its_own_periods(
    common_settings: CommonSettings,
) -> None:
    tenants = ["t1", "t2", "t3", "t4", "t5"]
    async with open_store(common_settings) as store:
        for tenant in tenants:
            await apply_config(store, config(tenant))
        await collect_huge(store.db, "t3", utc(2013, 6, 3, 1))

        batched = batched_invoices()
        report = await run_cycle(store, utc(2013, 8, 1), batch_size=10)

        assert report.failed == ["t3:2013-06-01"]
        assert report.issued == [f"INV-2013-{n:04d}" for n in range(1, 9)]
        assert batched_invoices() - batched == 8
        docs = await list_invoices(store)
        assert [(d["invoice_number"], d["tenant_id"], d["issue_date"]) for d in docs] == [
            (f"INV-2013-{n + 1:04d}", t, day) for n, (day, t) in enumerate(
                (day, t) for day in ("2013-07-01", "2013-08-01") for t in tenants if t != "t3")]
        [error] = await open_billing_errors(store.db)
        assert (error["tenant_id"], error["reason"], error["later_periods_waiting"]) == (
            "t3", "amount_out_of_range", 1)


async def test_a_batch_whose_ledger_moved_is_issued_one_by_one_without_a_gap(
    common_settings: CommonSettings, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenants = ["t1", "t2", "t3", "t4"]
    moved: list[str] = []

    async def stale_ledger(store: InvoicerStore, session: Any, tenant_ids: Any,
                           invoice_ids: Any) -> BatchReads:
        reads = await read_batch(store, session, tenant_ids, invoice_ids)
        if not moved and "t2" in reads.tenants:  # once: t2's ledger moved after the read
            moved.append("t2")
            reads.tenants["t2"] = {**reads.tenants["t2"],
                                   "ledger_rev": reads.tenants["t2"]["ledger_rev"] - 1}
        return reads

    monkeypatch.setattr(batch_issuing, "read_batch", stale_ledger)
    async with open_store(common_settings) as store:
        for tenant in tenants:
            await apply_config(store, config(tenant))
        with caplog.at_level(logging.WARNING, logger="services.invoicer"):
            report = await run_cycle(store, utc(2013, 8, 1), batch_size=10)

        assert moved == ["t2"]
        assert any("issued one by one" in r.getMessage() for r in caplog.records)
        assert report.failed == []
        assert report.issued == [f"INV-2013-{n:04d}" for n in range(1, 9)]
        docs = await list_invoices(store)
        assert sorted((d["tenant_id"], d["issue_date"]) for d in docs) == sorted(
            (t, day) for t in tenants for day in ("2013-07-01", "2013-08-01"))
        assert await store.db[OUTBOX].count_documents({"type": "InvoiceIssued"}) == 8
        ledger = await store.tenant("t2")
        assert ledger is not None and ledger["invoices"] == 2


async def test_a_ledger_another_process_moves_during_a_batch_is_priced_again_once(
    common_settings: CommonSettings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    tenants = ["t1", "t2", "t3"]
    bumped: list[int] = []

    async def other_process_bumps(store: InvoicerStore, session: Any, tenant_ids: Any,
                                  invoice_ids: Any) -> BatchReads:
        reads = await read_batch(store, session, tenant_ids, invoice_ids)
        if not bumped:  # once, outside the batch's transaction, after its read
            result = await store.tenants.update_one({"_id": "t2"}, {"$inc": {"ledger_rev": 1}})
            bumped.append(result.modified_count)
        return reads

    monkeypatch.setattr(batch_issuing, "read_batch", other_process_bumps)
    async with open_store(common_settings) as store:
        for tenant in tenants:
            await apply_config(store, config(tenant))
        report = await run_cycle(store, utc(2013, 7, 1), batch_size=10)

        assert bumped == [1]
        assert report.failed == []
        assert report.issued == ["INV-2013-0001", "INV-2013-0002", "INV-2013-0003"]
        assert [d["tenant_id"] for d in await list_invoices(store)] == tenants
        ledger = await store.tenant("t2")
        assert ledger is not None and (ledger["ledger_rev"], ledger["invoices"]) == (2, 1)


async def test_one_batch_counts_every_redemption_of_a_code_several_tenants_take(
    common_settings: CommonSettings,
) -> None:
    """Four tenants of one batch redeem the same code (room for three): one
    guarded count update takes all three, exactly as three one-by-one issues would."""
    roomy = {"code": "RoomyThree3x", "amount_off": 200, "duration": "forever", "max_redemptions": 3}
    as_of = utc(2026, 6, 1)
    async with open_store(common_settings) as store:
        for tenant in ("r-one", "r-two", "r-three", "r-four"):
            await apply_config(store, config(tenant, effective_from="2026-05-01", coupon=roomy))
            await collect_usage(store.db, tenant, "cpu_hours", "web", utc(2026, 5, 9, 4), "2")
        before = await snapshot(store)
        await one_by_one(store, as_of)
        expected = await outcome(store)
        await restore(store, before)

        batched = batched_invoices()
        report = await run_cycle(store, as_of, batch_size=10)

        assert len(report.issued) == 4 and report.failed == []
        assert batched_invoices() - batched == 4, "all four in one batch transaction"
        assert await outcome(store) == expected
        count = await store.db[COUPON_REDEMPTIONS].find_one({"_id": "RoomyThree3x"})
        assert count is not None and count["redemptions"] == 3
        assert count["tenants"] == ["r-four", "r-one", "r-three"]  # due order: by tenant id
