"""The invoicer's operator commands: issue, list, show, totals, dashboard, next-due, PDF."""

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.common.settings import CommonSettings
from services.invoicer.handlers import apply_config
from tests.integration.test_invoicer_support import add_usage, config, open_store, utc

pytestmark = pytest.mark.integration


async def seed(settings: CommonSettings) -> None:
    async with open_store(settings) as store:
        await apply_config(store, config("acme"))
        await apply_config(store, config("umbrella", timezone="Europe/Amsterdam", settings={
            "auto_generate_invoices": False, "billing_frequency": "annually",
            "currency": "EUR", "flat_rate_amount": 120000}))
        await add_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 3, 1), "7")


def test_operators_issue_list_show_and_print_invoices(
    common_settings: CommonSettings, tmp_path: Path,
) -> None:
    asyncio.run(seed(common_settings))
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    cycle = json.loads(run("cycle", "run", "--as-of", "2013-08-01T00:00:00Z"))
    assert cycle["issued"] == ["INV-2013-0001", "INV-2013-0002"]
    assert run("invoices", "issue", "--tenant", "umbrella", "--period-end",
               "2014-06-01").strip() == "INV-2014-0001"
    refused = runner.invoke(app, ["invoices", "issue", "--tenant", "umbrella",
                                  "--period-end", "2014-05-01"])
    assert refused.exit_code == 1

    listed = json.loads(run("invoices", "list", "--tenant", "acme", "--status", "unpaid",
                            "--json"))
    assert [i["invoice_number"] for i in listed] == ["INV-2013-0001", "INV-2013-0002"]
    assert listed[0]["amount"] == 1000 + 350
    assert "INV-2014-0001" in run("invoices", "list")
    shown = json.loads(run("invoices", "show", "INV-2014-0001", "--json"))
    assert shown["period_start"] == "2013-06-01T00:00:00+02:00" and shown["currency"] == "EUR"
    assert "Flat fee" in run("invoices", "show", "INV-2013-0001")

    totals = json.loads(run("invoices", "totals", "--tenant", "acme", "--json"))
    assert totals == {"outstanding_balance": {"USD": 2350}, "total_paid": {},
                      "overdue_count": 1, "total_invoices": 2}  # June's is past due
    board = json.loads(run("dashboard", "--as-of", "2013-08-01T00:00:00Z", "--json"))
    assert (board["total_tenants"], board["pending_invoices"], board["overdue_invoices"]) == (
        2, 2, 1)
    assert run("cycle", "next-due", "--after", "2013-08-01T00:00:00Z").strip() == (
        "2013-08-16T00:00:00+00:00")  # July's invoice: due 15 Aug, overdue at its end

    pdf = tmp_path / "inv.pdf"
    run("invoices", "pdf", "INV-2013-0001", "-o", str(pdf))
    assert pdf.read_bytes().startswith(b"%PDF")


def issue(*args: str) -> Any:
    """`billing invoices issue ARGS` in this process."""
    return CliRunner().invoke(app, ["invoices", "issue", *args])


async def seed_manual_and_auto(settings: CommonSettings) -> None:
    async with open_store(settings) as store:
        await apply_config(store, config("umbrella", settings={"auto_generate_invoices": False}))
        await apply_config(store, config("acme"))


def test_an_operator_cannot_issue_a_period_that_has_not_ended_on_the_billing_clock(
    common_settings: CommonSettings,
) -> None:
    asyncio.run(seed_manual_and_auto(common_settings))
    early = issue("--tenant", "umbrella", "--period-end", "2013-07-01",
                  "--as-of", "2013-06-30T23:59:59Z")
    assert early.exit_code == 1
    assert "has not ended" in early.output and "2013-07-01T00:00:00+00:00" in early.output
    far = issue("--tenant", "umbrella", "--period-end", "9999-12-31")  # clock: now
    assert far.exit_code == 1 and "has not ended" in far.output
    ended = issue("--tenant", "umbrella", "--period-end", "2013-07-01",
                  "--as-of", "2013-07-01T00:00:00Z")
    assert (ended.exit_code, ended.output.strip()) == (0, "INV-2013-0001")


def test_an_operator_cannot_leave_a_gap_or_overlap_what_is_invoiced(
    common_settings: CommonSettings,
) -> None:
    asyncio.run(seed_manual_and_auto(common_settings))
    clock: tuple[str, ...] = ()  # the billing clock is now: every 2013 period has ended
    skipped = issue("--tenant", "umbrella", "--period-end", "2013-08-01", *clock)
    assert skipped.exit_code == 1
    assert "unbilled" in skipped.output and "2013-06-01..2013-07-01 first" in skipped.output
    assert issue("--tenant", "umbrella", "--period-end", "2013-07-01", *clock).exit_code == 0

    overlap = issue("--tenant", "umbrella", "--period-end", "2013-06-15", *clock)
    assert overlap.exit_code == 1 and "overlap" in overlap.output
    again = issue("--tenant", "umbrella", "--period-end", "2013-07-01", *clock)
    assert (again.exit_code, again.output.strip()) == (0, "already issued")
    off_grid = issue("--tenant", "umbrella", "--period-end", "2013-07-15", *clock)
    assert off_grid.exit_code == 1 and "no billing period" in off_grid.output
    gap = issue("--tenant", "umbrella", "--period-end", "2013-09-01", *clock)
    assert gap.exit_code == 1 and "2013-07-01..2013-08-01 first" in gap.output
    assert issue("--tenant", "umbrella", "--period-end", "2013-08-01", *clock).exit_code == 0


def test_a_tenant_that_auto_generates_is_refused_unless_a_forced_issue_says_who_and_why(
    common_settings: CommonSettings,
) -> None:
    asyncio.run(seed_manual_and_auto(common_settings))
    clock: tuple[str, ...] = ()
    refused = issue("--tenant", "acme", "--period-end", "2013-07-01", *clock)
    assert refused.exit_code == 1 and "automatically" in refused.output
    no_reason = issue("--tenant", "acme", "--period-end", "2013-07-01", "--force",
                      "--actor", "ops-admin", *clock)
    assert no_reason.exit_code == 2 and "--reason" in no_reason.output
    forced = issue("--tenant", "acme", "--period-end", "2013-07-01", "--force", "--actor",
                   "ops-admin", "--reason", "customer asked for the invoice early", *clock)
    assert (forced.exit_code, forced.output.strip()) == (0, "INV-2013-0001")

    async def audited() -> list[dict[str, Any]]:
        async with open_store(common_settings) as store:
            return await store.audit.find({"decision": "forced"}).to_list()

    [record] = asyncio.run(audited())
    assert record["who"] == {"user_id": "ops-admin"}
    assert record["why"] == {"reason": "customer asked for the invoice early"}
    assert record["what"]["invoice_id"] == "acme:2013-06-01"
    assert record["invoice_number"] == "INV-2013-0001" and record["when"]["requested_at"]
