"""The invoice run in steady state: usage of the last invoiced period written after an older
period's marker is not late usage, so the third and later invoices still go through the batch
transaction; usage that did arrive late for an invoiced period is still adjusted."""

import pytest

from services.invoicer.adapters import batch_issuing
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.batch_pricing import BatchItem
from services.invoicer.handlers import apply_config
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import due_periods, run_cycle
from tests.integration.invoice_run_support import batched_invoices
from tests.integration.test_invoicer_support import collect_usage, config, open_store, utc

pytestmark = pytest.mark.integration


async def two_months_invoiced(store: InvoicerStore) -> None:
    """Tenant t1 from April, with usage in April and May, both months invoiced."""
    await apply_config(store, config("t1", effective_from="2026-04-01"))
    await collect_usage(store.db, "t1", "cpu_hours", "web", utc(2026, 4, 10, 3), "1.5")
    assert len((await run_cycle(store, utc(2026, 5, 1))).issued) == 1
    await collect_usage(store.db, "t1", "cpu_hours", "web", utc(2026, 5, 10, 3), "2.5")
    assert len((await run_cycle(store, utc(2026, 6, 1))).issued) == 1


async def june_is_late(store: InvoicerStore) -> bool:
    """Whether the invoice run's read ahead finds late usage for t1's June."""
    items = [BatchItem(p, t) for p, t in await due_periods(store, utc(2026, 7, 1))]
    return (await batch_issuing.prefetch(store, items))[items[0].invoice_id].late


async def test_a_third_month_without_late_usage_is_issued_by_the_batch(common_settings) -> None:
    async with open_store(common_settings) as store:
        await two_months_invoiced(store)
        await collect_usage(store.db, "t1", "cpu_hours", "web", utc(2026, 6, 10, 3), "3.5")
        assert not await june_is_late(store), "May's usage came after April's marker only"

        before = batched_invoices()
        assert len((await run_cycle(store, utc(2026, 7, 1))).issued) == 1
        assert batched_invoices() - before == 1, "June went through the batch transaction"
        june = {d["_id"]: d for d in await list_invoices(store)}["t1:2026-06-01"]
        assert [li["kind"] for li in june["line_items"]] == ["flat_fee", "usage"]


async def test_usage_late_for_an_older_period_is_still_adjusted(common_settings) -> None:
    async with open_store(common_settings) as store:
        await two_months_invoiced(store)
        await collect_usage(store.db, "t1", "cpu_hours", "web", utc(2026, 4, 20, 3), "4")
        assert await june_is_late(store)

        assert len((await run_cycle(store, utc(2026, 7, 1))).issued) == 1
        june = {d["_id"]: d for d in await list_invoices(store)}["t1:2026-06-01"]
        assert "adjustment" in [li["kind"] for li in june["line_items"]]
