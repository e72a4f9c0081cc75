"""Two invoicer processes run the same cycle at once: no duplicate invoice, no gap in numbers."""

import asyncio
import json
import sys

import pytest

from services.common.settings import CommonSettings
from services.invoicer.handlers import apply_config
from services.invoicer.names import OUTBOX
from services.invoicer.reports import list_invoices
from tests.integration.test_invoicer_support import config, open_store

pytestmark = pytest.mark.integration


async def cycle_process(env: dict[str, str], as_of: str) -> dict[str, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "cycle", "run", "--as-of", as_of, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    assert proc.returncode == 0, err.decode()[-2000:]
    result: dict[str, list[str]] = json.loads(out)
    return result


async def test_two_invoicer_processes_running_one_cycle_issue_each_invoice_once_without_gaps(
    common_settings: CommonSettings, subprocess_env: dict[str, str],
) -> None:
    async with open_store(common_settings) as store:
        for n in range(5):
            await apply_config(store, config(f"tenant{n}", effective_from="2013-10-01"))
        await apply_config(store, config("late", effective_from="2013-12-01"))

    a, b = await asyncio.gather(cycle_process(subprocess_env, "2014-02-01T00:00:00Z"),
                                cycle_process(subprocess_env, "2014-02-01T00:00:00Z"))

    issued = a["issued"] + b["issued"]
    expected = [f"INV-2013-{n:04d}" for n in range(1, 11)] + [
        f"INV-2014-{n:04d}" for n in range(1, 13)]
    assert sorted(issued) == expected  # 5 tenants x 4 periods + 2, numbered per year
    async with open_store(common_settings) as store:
        invoices = await list_invoices(store)
        assert sorted(d["invoice_number"] for d in invoices) == expected
        assert len({(d["tenant_id"], d["period_start"]) for d in invoices}) == len(expected)
        # numbers follow issue order: period end, then tenant id
        in_order = sorted(invoices, key=lambda d: (d["period_end"], d["tenant_id"]))
        assert [d["invoice_number"] for d in in_order] == expected
        assert await store.db[OUTBOX].count_documents({"type": "InvoiceIssued"}) == len(expected)
