"""A period that cannot be priced is isolated: recorded as a billing error (metric, log, stored
record, `billing invoices errors`, dashboard) while every other tenant is still invoiced and
overdue-marked; a later successful issue of that period resolves the record."""

import asyncio
import json
import logging
from datetime import datetime
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from contracts.usage import UsageData, UsageRecorded
from services.cli import app
from services.common.settings import CommonSettings
from services.invoicer.adapters.billing_errors import open_billing_errors, record_billing_error
from services.invoicer.handlers import apply_config
from services.invoicer.periods import iter_periods
from services.invoicer.reports import dashboard, list_invoices
from services.invoicer.schedule import run_cycle
from services.usage_collector.api import record_usage
from tests.integration.test_invoicer_support import config, open_store, utc

pytestmark = pytest.mark.integration


async def collect(db: object, tenant_id: str, at: datetime, quantity: str, n: int = 1) -> None:
    """One `cpu_hours` event written through the collector's own store (its transaction, its
    bucket schema), bypassing only the wire validation that would refuse such a quantity."""
    event = UsageRecorded.model_construct(
        specversion="1.0", id=f"{tenant_id}-{n}", source="test", type="billing.usage",
        subject=tenant_id, time=at,
        data=UsageData.model_construct(meter="cpu_hours", quantity=Decimal(quantity),
                                       service="web", resource_id=None, aggregation=None),
    )
    await record_usage(db, [event])  # type: ignore[arg-type]


def errors_counted(reason: str) -> float:
    return REGISTRY.get_sample_value(
        "billing_invoicer_billing_errors_total", {"reason": reason}) or 0.0


async def seed_one_bad_tenant(settings: CommonSettings) -> None:
    async with open_store(settings) as store:
        for tenant in ("acme", "initech", "umbrella", "zeta"):
            await apply_config(store, config(tenant))
        await collect(store.db, "acme", utc(2013, 6, 3, 1), "7")
        await collect(store.db, "initech", utc(2013, 6, 3, 1), "1E+6000")  # quantize raises
        await collect(store.db, "umbrella", utc(2013, 6, 3, 1), "1E+20")  # > int64 cents
        await collect(store.db, "zeta", utc(2013, 6, 3, 1), "2")


async def test_a_period_that_cannot_be_priced_does_not_stop_other_tenants_nor_overdue(
    common_settings: CommonSettings, caplog: pytest.LogCaptureFixture,
) -> None:
    await seed_one_bad_tenant(common_settings)
    before = errors_counted("unpriceable"), errors_counted("amount_out_of_range")
    async with open_store(common_settings) as store:
        with caplog.at_level(logging.WARNING, logger="services.invoicer"):
            report = await run_cycle(store, utc(2013, 8, 1))

        docs = await list_invoices(store)
        assert sorted({d["tenant_id"] for d in docs}) == ["acme", "zeta"]
        assert len(report.issued) == 4  # June and July of acme and zeta
        assert report.overdue == ["acme:2013-06-01", "zeta:2013-06-01"]  # due 15 Jul
        assert report.failed == ["initech:2013-06-01", "umbrella:2013-06-01"]

        errors = await open_billing_errors(store.db)
        assert [(e["tenant_id"], e["period_start"], e["reason"], e["later_periods_waiting"])
                for e in errors] == [("initech", utc(2013, 6, 1), "unpriceable", 1),
                                     ("umbrella", utc(2013, 6, 1), "amount_out_of_range", 1)]
        assert errors_counted("unpriceable") == before[0] + 1
        assert errors_counted("amount_out_of_range") == before[1] + 1
        logged = [r for r in caplog.records if getattr(r, "tenant_id", None) == "umbrella"]
        assert logged and logged[0].period_start == "2013-06-01"  # type: ignore[attr-defined]
        assert (await dashboard(store, utc(2013, 8, 1)))["billing_errors"] == 2

        again = await run_cycle(store, utc(2013, 8, 1))
        assert again.issued == [] and again.failed == ["initech:2013-06-01", "umbrella:2013-06-01"]
        (initech, _) = await open_billing_errors(store.db)
        assert initech["attempts"] == 2


async def test_a_later_successful_issue_resolves_the_billing_error_of_that_period(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, config("acme"))
        june = next(iter_periods(config("acme").effective_from, "monthly", 1, "UTC"))
        await record_billing_error(store.db, "acme", june, ValueError("transient"), 0)
        assert len(await open_billing_errors(store.db)) == 1

        report = await run_cycle(store, utc(2013, 7, 1))

        assert report.issued == ["INV-2013-0001"] and report.failed == []
        assert await open_billing_errors(store.db) == []
        resolved = await store.db["invoicer_billing_errors"].find_one({"_id": "acme:2013-06-01"})
        assert resolved is not None and resolved["resolved_by"] == "INV-2013-0001"


def test_operators_see_billing_errors_in_the_cli_and_the_dashboard(
    common_settings: CommonSettings,
) -> None:
    asyncio.run(seed_one_bad_tenant(common_settings))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    run("cycle", "run", "--as-of", "2013-07-01T00:00:00Z")
    listed = json.loads(run("invoices", "errors", "--json"))
    assert [(e["tenant_id"], e["period_start"], e["reason"]) for e in listed] == [
        ("initech", "2013-06-01T00:00:00+00:00", "unpriceable"),
        ("umbrella", "2013-06-01T00:00:00+00:00", "amount_out_of_range")]
    assert "initech" in run("invoices", "errors")
    board = json.loads(run("dashboard", "--as-of", "2013-07-01T00:00:00Z", "--json"))
    assert board["billing_errors"] == 2


async def test_one_invoice_that_cannot_be_marked_overdue_does_not_stop_the_others(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        for tenant in ("acme", "globex"):
            await apply_config(store, config(tenant))
        await run_cycle(store, utc(2013, 7, 1))
        # a document an older version left unreadable: its due date is not a date
        await store.invoices.update_one({"_id": "acme:2013-06-01"},
                                        {"$set": {"due_date": "someday"}})
        before = errors_counted("overdue_failed")

        report = await run_cycle(store, utc(2013, 7, 16))

        assert report.overdue == ["globex:2013-06-01"]
        assert errors_counted("overdue_failed") == before + 1
