"""The demo on one month of the real Bitbrains trace: every worker its own process, and the
invoice amounts equal to totals this test computes itself from the CSV rows."""

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.expected import minor, usage_by_meter

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PRICES = {"cpu_hours": "0.04", "memory_gb_hours": "0.005", "bandwidth_gb": "0.09"}


def one_month_input(shared_data: Path, tmp_path: Path) -> tuple[Path, Path]:
    """acme alone (USD, monthly on the 1st, a goodwill credit) on July 2013's files."""
    tenants = json.loads((shared_data / "tenants.json").read_text())
    tenants["tenants"] = [t for t in tenants["tenants"] if t["tenant_id"] == "acme"]
    tenants_file = tmp_path / "tenants.json"
    tenants_file.write_text(json.dumps(tenants))
    trace = tmp_path / "trace"
    (trace / "2013-7").mkdir(parents=True)
    for vm in ("399", "408"):
        source = shared_data / "traces" / "bitbrains-rnd" / "2013-7" / f"{vm}.csv"
        (trace / "2013-7" / f"{vm}.csv").symlink_to(source)
    return tenants_file, trace


def run_demo(args: list[str], env: dict[str, str], out: Path) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", *args, "--out", str(out), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary: dict[str, object] = json.loads(proc.stdout[proc.stdout.index("{") :])
    return summary


@pytest.mark.timeout(900)
def test_one_month_of_real_usage_is_invoiced_to_the_cent(
    shared_data: Path, tmp_path: Path, subprocess_env: dict[str, str]
) -> None:
    tenants_file, trace = one_month_input(shared_data, tmp_path)
    out = tmp_path / "out"
    summary = run_demo(
        ["--tenants", str(tenants_file), "--trace", str(trace), "--as-of", "2013-08-01T00:00:00Z"],
        subprocess_env,
        out,
    )
    invoices = json.loads((out / "invoices.json").read_text())
    assert [i["invoice_number"] for i in invoices] == ["INV-2013-0001", "INV-2013-0002"]

    expected_total = {}
    for invoice, (start, end) in zip(
        invoices,
        [
            (datetime(2013, 6, 1, tzinfo=UTC), datetime(2013, 7, 1, tzinfo=UTC)),
            (datetime(2013, 7, 1, tzinfo=UTC), datetime(2013, 8, 1, tzinfo=UTC)),
        ],
        strict=True,
    ):
        usage = usage_by_meter(trace, {"399", "408"}, start, end)
        lines = {li["meter"]: li for li in invoice["line_items"] if li["kind"] == "usage"}
        from decimal import Decimal

        for meter, price in PRICES.items():
            assert Decimal(lines[meter]["quantity"]) == usage[meter], meter
            assert lines[meter]["amount"] == minor(usage[meter] * Decimal(price)), meter
        subtotal = 4900 + sum(minor(usage[m] * Decimal(p)) for m, p in PRICES.items())
        expected_total[invoice["invoice_number"]] = subtotal
        assert invoice["period_start"].startswith(start.date().isoformat())
        assert invoice["currency"] == "USD"

    first, second = invoices
    assert first["amount"] == expected_total["INV-2013-0001"]  # credit granted 15 July: not yet
    credit = [li for li in second["line_items"] if li["kind"] == "credit"]
    assert credit and credit[0]["amount"] == -min(2500, expected_total["INV-2013-0002"])
    assert second["amount"] == expected_total["INV-2013-0002"] + credit[0]["amount"]
    assert first["issue_date"] == "2013-07-01" and first["due_date"] == "2013-07-15"
    assert {i["status"] for i in invoices} == {"paid"}  # pm_card_visa pays on issue
    assert all(i["payment_reference"].startswith("pi_") for i in invoices)
    assert sorted(p.name for p in (out / "invoices").glob("*.pdf")) == [
        "INV-2013-0001.pdf",
        "INV-2013-0002.pdf",
    ]
    assert all(p.read_bytes().startswith(b"%PDF") for p in (out / "invoices").glob("*.pdf"))
    assert summary["settled"] is True
    events = summary["events"]
    assert isinstance(events, dict)
    assert events["aggregated"] == events["published"]
    emails = list((out / "emails").glob("*.eml"))
    assert len(emails) == 4  # an invoice-ready email and a receipt per invoice
