"""`UsageLimitsChanged` windows (docs/plans.md, "Subscriptions"; docs/limits.md): the current
period and the next one with the limits in force in each, after a start, an upgrade, a
scheduled downgrade and its effect, a cancel and its end, and on every period rollover."""

import pytest

from services.common.settings import CommonSettings
from services.invoicer.schedule import run_cycle
from tests.integration.test_invoicer_support import open_store, utc
from tests.integration.test_subscriptions_support import (
    PRO,
    STARTER,
    add_plans,
    outbox,
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
        await add_plans(store, STARTER, PRO)
        await subscribe(store, "start", utc(2026, 4, 1, 8), "starter")
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
        await add_plans(store, STARTER)
        await subscribe(store, "start", utc(2026, 4, 1, 8), "starter")
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
        await add_plans(store, STARTER)
        await subscribe(store, "start", utc(2026, 4, 1, 8), "starter")
        await run_cycle(store, utc(2026, 6, 15))
        await run_cycle(store, utc(2026, 6, 15))  # again: no duplicate
        events = await outbox(store, "UsageLimitsChanged")
        assert [windows(e)[0][:2] for e in events] == [(APR, MAY), (MAY, JUN), (JUN, JUL)]
