"""Subscriptions meeting late or out-of-order commands (docs/plans.md, "Late commands"): an
operator's configuration accepted between a period's end and the cycle's rollover, starts
and restarts on another grid, late checkouts, and the cycle refusing to bill past an end."""

from typing import Any

import pytest

from services.common.settings import CommonSettings
from services.invoicer.adapters.subscriptions import subscription_of
from services.invoicer.api import current_config
from services.invoicer.handlers import apply_config
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from tests.integration.test_invoicer_support import open_store, utc
from tests.integration.test_subscriptions_support import PRO, STARTER, add_plans, subscribe

pytestmark = pytest.mark.integration
CPU = ("usage", "cpu_hours (per unit)", 0)


def lines(doc: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(li["kind"], li["description"], li["amount"]) for li in doc["line_items"]]


async def test_an_operator_edit_after_the_period_end_keeps_the_scheduled_downgrade(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER, PRO)
        await subscribe(store, "start", utc(2026, 4, 1, 8), "pro")
        assert await subscribe(store, "change", utc(2026, 4, 10), "starter") == \
            "downgrade_scheduled"
        current = await current_config(store.db, "acme")
        edit = current.model_copy(update={
            "event_id": "op-1", "occurred_at": utc(2026, 5, 1, 1),
            "actor": current.actor.model_copy(update={"role": "super", "user_id": "ops"}),
            "settings": current.settings.model_copy(
                update={"billing_email": "new@acme.example"})})
        await apply_config(store, edit)  # before the cycle rolled the subscription
        after = await current_config(store.db, "acme")
        assert (after.settings.flat_rate_amount, after.settings.billing_email) == \
            (1000, "new@acme.example")
        await run_cycle(store, utc(2026, 7, 2))
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.plan_code == "starter"
        invoices = await list_invoices(store, "acme")
        assert [lines(i) for i in invoices] == [
            [("flat_fee", "Flat fee", 3000), CPU],
            [("flat_fee", "Flat fee", 1000), CPU],
            [("flat_fee", "Flat fee", 1000), CPU]]
