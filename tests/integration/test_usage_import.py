"""Importing a Bitbrains trace directory end to end: published, dead-lettered, skipped,
aggregated, and read back with `billing usage summary`."""

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.common.mongo import database, make_client
from services.common.settings import CommonSettings
from services.usage_collector.adapters.store import collector_stats
from services.usage_collector.importer import import_bitbrains, publish_jsonl
from services.usage_collector.trace import convert_row
from tests.integration.test_usage_collector import (
    collector,
    read_dead_letters,
    wait_consumed,
)

pytestmark = pytest.mark.integration

HEADER = "Timestamp [ms];\tCPU cores;\t...\n"
GOOD = [
    "1372629804;\t4;\t9599.99;\t180.79;\t1.8833333333333335;\t4177920.0;\t1.6324608E7;\t0.0;"
    "\t9.0;\t0.06666666666666667;\t0.0\n",
    "1372630104;\t0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0\n",
    "1372633704;\t2;\t1.0;\t1.0;\t50.5;\t1.0;\t2097152;\t0.0;\t0.0;\t100.0;\t24.5\n",
]
BAD = "1372634004;\t2;\toops;\t1.0;\t-3;\t1.0;\t1.0;\t0.0;\t0.0;\t1.0;\t1.0\n"


def write_trace(root: Path) -> Path:
    trace = root / "trace"
    (trace / "2013-7").mkdir(parents=True)
    # line 5 repeats line 2's timestamp (the concatenated-series case), line 6 is bad
    (trace / "2013-7" / "399.csv").write_text(HEADER + "".join(GOOD) + GOOD[0] + BAD)
    (trace / "2013-7" / "999.csv").write_text(HEADER + GOOD[0] + GOOD[1])  # nobody owns 999
    return trace


def expected_acme_web() -> dict[str, Decimal]:
    want: dict[str, Decimal] = {}
    for line in GOOD:
        for meter, qty in convert_row(line).quantities.items():
            want[meter] = want.get(meter, Decimal(0)) + qty
    return want


async def scenario(settings: CommonSettings, trace: Path, tenants: Path) -> dict[str, Any]:
    """Import, aggregate, summarise through the CLI and read the dead letters."""
    report = await import_bitbrains(settings, trace, tenants, progress=False)
    client = make_client(settings)
    try:
        async with collector():
            stats = await wait_consumed(database(client, settings), 12)
        summary = await asyncio.to_thread(
            CliRunner().invoke, app,
            ["usage", "summary", "--tenant", "acme", "--from", "2013-06-30T22:00:00Z",
             "--to", "2013-07-01", "--json"],
        )
        letters = await read_dead_letters(settings, 1)
    finally:
        await client.drop_database(settings.mongo_db)
        await client.close()
    return {"report": report, "stats": stats, "summary": summary, "letters": letters}


def test_a_trace_is_imported_aggregated_and_summarised(
    billing_env: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    # synchronous test: the summary command runs its own event loop (in a thread)
    tenants = shared_data / "tenants.json"
    out = asyncio.run(scenario(CommonSettings(), write_trace(tmp_path), tenants))
    report = out["report"]
    assert (report.files, report.rows_read, report.rows_skipped) == (2, 7, 2)
    assert (report.events_published, report.rows_dead_lettered) == (12, 1)
    assert report.min_time == datetime(2013, 6, 30, 22, 3, 24, tzinfo=UTC)
    assert out["stats"] == {"aggregated": 9, "duplicates": 3, "dead_lettered": 0}
    (letter,) = [d for d in out["letters"] if d["service"] == "usage_importer"]
    assert (letter["reason"], letter["topic"], letter["offset"]) == (
        "unparseable_row", "2013-7/399.csv", 6
    )
    assert letter["original"] == BAD.rstrip("\n")
    assert out["summary"].exit_code == 0, out["summary"].output
    rows = json.loads(out["summary"].output)["usage"]
    assert {row["meter"]: Decimal(row["quantity"]) for row in rows} == expected_acme_web()
    assert {(row["service"], row["events"]) for row in rows} == {("web", 3)}


async def test_a_jsonl_file_is_published_keyed_by_subject(
    common_settings: CommonSettings, mongo_db: Any, tmp_path: Path
) -> None:
    lines = [
        {"specversion": "1.0", "id": f"j{n}", "source": "file", "type": "billing.usage",
         "subject": "globex", "time": "2013-07-02T03:04:05Z",
         "data": {"meter": "storage_gb", "quantity": str(n), "service": "batch"}}
        for n in range(1, 5)
    ]
    path = tmp_path / "usage.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\nnot json\n")
    assert await publish_jsonl(common_settings, path) == 5
    async with collector():
        stats = await wait_consumed(mongo_db, 5)
    assert stats == {"aggregated": 4, "duplicates": 0, "dead_lettered": 1}
    doc = await mongo_db["usage_aggregates"].find_one()
    assert (doc["aggregation"], doc["sum"], doc["count"]) == ("avg", Decimal(10), 4)
    assert await collector_stats(mongo_db) == stats
