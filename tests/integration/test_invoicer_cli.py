"""The invoicer's operator commands: issue, list, show, totals, dashboard, next-due, PDF."""

import asyncio
import json
from pathlib import Path

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
