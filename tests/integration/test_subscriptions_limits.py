"""`UsageLimitsChanged` windows (docs/plans.md, "Subscriptions"; docs/limits.md): the current
period and the next one with the limits in force in each, after a start, an upgrade, a
scheduled downgrade and its effect, a cancel and its end, and on every period rollover."""

import pytest

from services.common.settings import CommonSettings
from services.invoicer.adapters.billing_errors import BILLING_ERRORS_TOTAL
from services.invoicer.adapters.subscriptions import SUBSCRIPTIONS
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from tests.integration.test_invoicer_support import open_store, utc
from tests.integration.test_subscriptions_support import (
    PRO,
    STARTER,
    outbox,
    plan,
    start_on_starter,
    subscribe,
    windows,
)

pytestmark = pytest.mark.integration
APR, MAY, JUN, JUL = "2026-04-01T00:00:00Z", "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z", \
    "2026-07-01T00:00:00Z"
SOFT_100 = [("cpu_hours", "100", False)]
HARD_1000 = [("cpu_hours", "1000", True)]


async def test_windows_follow_start_upgrade_downgrade_and_rollover(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER, PRO)
        await subscribe(store, "change", utc(2026, 4, 10), "pro")
        await subscribe(store, "change", utc(2026, 4, 20), "starter")
        await run_cycle(store, utc(2026, 4, 25))  # nothing ended: no new window
        await run_cycle(store, utc(2026, 5, 1))
        await run_cycle(store, utc(2026, 6, 2))
        events = await outbox(store, "UsageLimitsChanged")
        assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
        assert [windows(e) for e in events] == [
            [(APR, MAY, SOFT_100), (MAY, JUN, SOFT_100)],     # started on Starter
            [(APR, MAY, HARD_1000), (MAY, JUN, HARD_1000)],   # Pro's limits at once
            [(APR, MAY, HARD_1000), (MAY, JUN, SOFT_100)],    # Starter from May
            [(MAY, JUN, SOFT_100), (JUN, JUL, SOFT_100)],     # downgraded: rolled over
            [(JUN, JUL, SOFT_100), (JUL, "2026-08-01T00:00:00Z", SOFT_100)],  # rollover
        ]


async def test_a_cancel_leaves_one_window_and_the_end_none(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER)
        await subscribe(store, "cancel", utc(2026, 4, 10))
        await run_cycle(store, utc(2026, 5, 3))
        await run_cycle(store, utc(2026, 7, 3))  # ended: nothing more
        events = await outbox(store, "UsageLimitsChanged")
        assert [windows(e) for e in events] == [
            [(APR, MAY, SOFT_100), (MAY, JUN, SOFT_100)],
            [(APR, MAY, SOFT_100)],
            [],
        ]


async def test_a_late_cycle_rolls_over_every_period_it_passed(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER)
        await run_cycle(store, utc(2026, 6, 15))
        await run_cycle(store, utc(2026, 6, 15))  # again: no duplicate
        events = await outbox(store, "UsageLimitsChanged")
        assert [windows(e)[0][:2] for e in events] == [(APR, MAY), (MAY, JUN), (JUN, JUL)]


async def test_one_broken_subscription_does_not_stop_the_others_rolling_over(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER)
        await subscribe(store, "start", utc(2026, 4, 1, 8), "starter", tenant="beta")
        await store.db[SUBSCRIPTIONS].update_one({"_id": "acme"}, {"$set": {"plan": "broken"}})
        before = BILLING_ERRORS_TOTAL.labels(reason="subscription_rollover_failed")._value.get()
        report = await run_cycle(store, utc(2026, 5, 2))
        assert len(report.issued) == 2  # both Aprils invoiced
        beta = [e for e in await outbox(store, "UsageLimitsChanged") if e["tenant_id"] == "beta"]
        assert [windows(e)[0][:2] for e in beta] == [(APR, MAY), (MAY, JUN)]
        after = BILLING_ERRORS_TOTAL.labels(reason="subscription_rollover_failed")._value.get()
        assert after == before + 1


async def test_a_change_to_a_yearly_plan_waits_for_the_period_end_and_its_window_is_a_stub(
    common_settings: CommonSettings,
) -> None:
    yearly = plan("yearly", 20000, "0.10", billing_frequency="annually")
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER, yearly)
        assert await subscribe(store, "change", utc(2026, 4, 10), "yearly") == (
            "downgrade_scheduled")
        await run_cycle(store, utc(2026, 5, 2))
        events = await outbox(store, "UsageLimitsChanged")
        # the yearly grid keeps the tenant's anchor (April, day 1): May 2026 .. April 2027
        assert windows(events[-1])[0][:2] == (MAY, "2027-04-01T00:00:00Z")
        assert windows(events[1])[1][:2] == (MAY, "2027-04-01T00:00:00Z")
        [april] = await list_invoices(store, "acme")
        assert april["amount"] == 1000
