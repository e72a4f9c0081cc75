"""Subscription commands whose instant falls in a period already invoiced (consumer lag,
Stripe's retries; docs/plans.md, "Late commands"), and the issuing transaction serialised with
the commands."""

import asyncio
from typing import Any

import pytest

from services.common.settings import CommonSettings
from services.invoicer.adapters.subscriptions import SUBSCRIPTIONS, subscription_of
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from tests.integration.test_invoicer_support import open_store, utc
from tests.integration.test_subscriptions_support import (
    PRO,
    STARTER,
    add_plans,
    lines,
    subscribe,
)

pytestmark = pytest.mark.integration
CPU = ("usage", "cpu_hours (per unit)", 0)


async def invoiced_april(store: Any, plan_code: str) -> None:
    await add_plans(store, STARTER, PRO)
    await subscribe(store, "start", utc(2026, 4, 1, 8), plan_code)
    await run_cycle(store, utc(2026, 5, 1, 0, 0, 5))  # April invoiced at the boundary


async def test_a_late_cancel_ends_at_the_end_of_the_invoiced_period_it_falls_in(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await invoiced_april(store, "starter")
        assert await subscribe(store, "cancel", utc(2026, 4, 30, 23, 59, 59)) == \
            "cancel_scheduled"
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.current_period_end == utc(2026, 5, 1)
        await run_cycle(store, utc(2026, 7, 2))
        assert [(i["period_start"], lines(i)) for i in await list_invoices(store, "acme")] == \
            [(utc(2026, 4, 1), [("flat_fee", "Flat fee", 1000), CPU])]  # no May
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.status == "canceled"


async def test_a_late_downgrade_takes_effect_at_the_end_of_the_invoiced_period(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await invoiced_april(store, "pro")
        assert await subscribe(store, "change", utc(2026, 4, 30), "starter") == \
            "downgrade_scheduled"
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.scheduled_at == utc(2026, 5, 1)
        await run_cycle(store, utc(2026, 6, 2))
        assert [lines(i)[0][2] for i in await list_invoices(store, "acme")] == [3000, 1000]


async def test_a_late_upgrade_takes_effect_at_the_first_period_not_invoiced(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await invoiced_april(store, "starter")
        assert await subscribe(store, "change", utc(2026, 4, 16), "pro") == "upgraded"
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.current_period_start == utc(2026, 5, 1)
        await run_cycle(store, utc(2026, 6, 2))
        april, may = await list_invoices(store, "acme")
        assert lines(april) == [("flat_fee", "Flat fee", 1000), CPU]
        assert lines(may) == [("flat_fee", "Flat fee", 3000), CPU]  # no proration at all


async def test_an_upgrade_racing_the_issue_of_its_period_is_billed_exactly_once(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store, open_store(common_settings) as other:
        await add_plans(store, STARTER, PRO)
        await subscribe(store, "start", utc(2026, 4, 1), "starter")
        await asyncio.gather(run_cycle(store, utc(2026, 5, 1, 0, 0, 5)),
                             subscribe(other, "change", utc(2026, 4, 16), "pro"))
        await run_cycle(store, utc(2026, 6, 2))
        april, may = await list_invoices(store, "acme")
        # upgrade first: prorated in April (15 of 30 days left); else from May, unprorated
        assert (lines(april), lines(may)) in [
            ([("flat_fee", "Flat fee", 1000), ("proration", "Unused time on Starter", -500),
              ("proration", "Remaining time on Pro", 1500), CPU],
             [("flat_fee", "Flat fee", 3000), CPU]),
            ([("flat_fee", "Flat fee", 1000), CPU], [("flat_fee", "Flat fee", 3000), CPU])]
        doc = await store.db[SUBSCRIPTIONS].find_one({"_id": "acme"})
        assert doc is not None and doc["invoiced_through"] == utc(2026, 6, 1)
