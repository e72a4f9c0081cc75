"""The demo on the messy Bitbrains files: nothing crashes, repeated rows count once, bad rows
are dead-lettered with their reason."""

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.runs import check_self_service, run_demo

pytestmark = pytest.mark.e2e


def edge_input(shared_data: Path, tmp_path: Path) -> tuple[Path, Path, int, int]:
    """Tenants owning the two edge VMs, and a copy of the files with two unreadable rows added.
    Returns (tenants file, trace dir, rows read, distinct (vm, timestamp) rows)."""
    trace = tmp_path / "trace"
    shutil.copytree(shared_data / "traces" / "bitbrains-rnd-edge", trace)
    short = trace / "2013-7" / "212.csv"
    short.chmod(0o644)
    with open(short, "a") as fh:
        fh.write("1375300000;\tnot-a-number;\t0.0\n")
        fh.write("1375300300;\t1;\t2599.99;\t-5.0;\t-1.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0\n")
    rows, distinct = 0, set()
    for path in trace.glob("*/*.csv"):
        for line in path.read_text().splitlines()[1:]:
            fields = [f.strip() for f in line.split(";")]
            if len(fields) == 11 and not fields[3].startswith("-") and fields[1].isdigit():
                rows += 1
                distinct.add((path.stem, fields[0]))
    tenants = {
        "actor": {"user_id": "ops-admin", "role": "super"},
        "tenants": [
            {
                "tenant_id": "edgeco",
                "name": "Edge Co",
                "timezone": "UTC",
                "effective_from": "2013-07-01",
                "billing_config": {
                    "flat_rate_amount": "10.00",
                    "currency": "USD",
                    "billing_frequency": "monthly",
                    "billing_email": "billing@edge.example",
                    "auto_generate_invoices": True,
                    "billing_day_of_month": 1,
                    "payment_due_days": 14,
                    "email_notifications": True,
                },
                "price_plan": {
                    "charges": [
                        {"meter": "cpu_hours", "model": "per_unit", "unit_price": "0.04"},
                        {"meter": "memory_gb_hours", "model": "per_unit", "unit_price": "0.005"},
                        {"meter": "bandwidth_gb", "model": "per_unit", "unit_price": "0.09"},
                    ]
                },
                "payment_method": "pm_card_visa",
                "usage_sources": [
                    {"trace": "bitbrains-rnd-edge", "vm": "212", "service": "short-lived"},
                    {"trace": "bitbrains-rnd-edge", "vm": "54", "service": "concatenated"},
                ],
            }
        ],
    }
    tenants_file = tmp_path / "tenants.json"
    tenants_file.write_text(json.dumps(tenants))
    return tenants_file, trace, rows, len(distinct)


@pytest.mark.timeout(900)
def test_messy_files_neither_crash_nor_double_count_and_bad_rows_are_dead_lettered(
    shared_data: Path, tmp_path: Path
) -> None:
    tenants_file, trace, rows, distinct = edge_input(shared_data, tmp_path)
    out = tmp_path / "out"
    summary = run_demo(
        ["--tenants", str(tenants_file), "--trace", str(trace), "--as-of", "2013-10-01T00:00:00Z"],
        out,
    )
    events = summary["events"]
    assert isinstance(events, dict)
    assert rows > distinct  # the concatenated file repeats timestamps
    assert events["aggregated"] == distinct * 3
    assert events["duplicates"] == (rows - distinct) * 3
    dead = [json.loads(line) for line in (out / "dead-letters.jsonl").read_text().splitlines()]
    bad_rows = [d for d in dead if d["reason"] == "unparseable_row"]
    assert len(bad_rows) == 2
    assert all("212.csv" in d["topic"] for d in bad_rows)
    invoices = json.loads((out / "invoices.json").read_text())
    assert invoices and all(i["tenant_id"] == "edgeco" for i in invoices)
    assert summary["settled"] is True
    # the API ran beside the workers; its keys are in the output folder
    keys = json.loads((out / "api-keys.json").read_text())
    assert summary["api"] == {"url": keys["url"], "keys_file": str(out.resolve() / "api-keys.json")}
    assert list(keys["tenants"]) == ["edgeco", "orbit-labs", "nova-analytics"]
    assert all(keys[role].startswith("key_") for role in ("super", "viewer", "ingest"))
    assert "listening on " + keys["url"] in (out / "logs" / "api.log").read_text()
    # after the billing clock, two new tenants subscribed through the Checkout on the wall
    # clock, one of them up to its hard limit; the operator's tenant's invoices are its own
    check_self_service(summary, out)
