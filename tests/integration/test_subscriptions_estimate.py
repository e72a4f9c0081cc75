"""The usage estimate's flat fee of the current period follows the subscription: an upgrade's
proration lines are in it, and a cancelled subscription has no period after its end."""

import pytest

from services.common.settings import CommonSettings
from services.invoicer.api import current_period, usage_estimate
from tests.integration.test_invoicer_support import open_store, utc
from tests.integration.test_subscriptions_support import (
    PRO,
    STARTER,
    start_on_starter,
    subscribe,
)

pytestmark = pytest.mark.integration


async def test_the_estimate_of_an_upgraded_period_includes_its_proration(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER, PRO)
        await subscribe(store, "change", utc(2026, 4, 11, 12), "pro")
        now = utc(2026, 4, 20)
        estimate = await usage_estimate(store.db, "acme", utc(2026, 4, 1), now, now)
        assert estimate is not None
        assert estimate["flat_fee"]["amount"] == 1000 - 650 + 1950
        assert estimate["flat_fee"]["prorated"] is True


async def test_a_cancelled_subscription_has_no_current_period_after_its_end(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER)
        await subscribe(store, "cancel", utc(2026, 4, 10))
        period = await current_period(store.db, "acme", utc(2026, 4, 20))
        assert period is not None and period.end == utc(2026, 5, 1)
        assert await current_period(store.db, "acme", utc(2026, 5, 20)) is None
