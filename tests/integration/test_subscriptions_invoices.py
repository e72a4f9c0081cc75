"""Subscriptions priced by the billing cycle (docs/plans.md, "Subscriptions" and
"Proration"): a start creates the configuration, an upgrade is prorated by the second on the
period's invoice, a downgrade waits for the period's end, a cancel bills its last period and
nothing after it."""

import asyncio

import pytest

from services.common.settings import CommonSettings
from services.invoicer.adapters.subscriptions import subscription_of
from services.invoicer.api import current_config
from services.invoicer.handlers import apply_config
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from tests.integration.test_invoicer_support import collect_usage, config, open_store, utc
from tests.integration.test_subscriptions_support import (
    PRO,
    STARTER,
    add_plans,
    lines,
    outbox,
    plan,
    span,
    start_on_starter,
    subscribe,
)

pytestmark = pytest.mark.integration
CPU = ("usage", "cpu_hours (per unit)")


async def test_a_start_creates_the_configuration_billed_on_the_start_day(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER)
        assert await subscribe(store, "start", utc(2026, 4, 17, 9), "starter",
                               timezone="Europe/Paris") == "started"
        config = await current_config(store.db, "acme")
        assert config is not None
        s = config.settings
        assert (s.billing_day_of_month, str(config.effective_from), config.timezone) == (
            17, "2026-04-17", "Europe/Paris")
        assert (s.flat_rate_amount, s.billing_email, s.payment_due_days) == (
            1000, "billing@acme.example", 14)
        await run_cycle(store, utc(2026, 5, 17))
        [first] = await list_invoices(store, "acme")
        assert span(first) == (utc(2026, 4, 16, 22), utc(2026, 5, 16, 22))  # local midnights
        view = await subscription_of(store.db, "acme")
        assert view is not None and (view.status, view.plan_code, view.plan_version) == (
            "active", "starter", 1)
        [started] = await outbox(store, "SubscriptionChanged")
        assert (started["change"], started["plan_code"]) == ("started", "starter")


async def test_an_upgrade_mid_period_is_prorated_by_the_second_on_that_periods_invoice(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER, PRO)
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2026, 4, 5), "10")
        # 10 days 12 h into the 30-day April period: 19.5 / 30 = 0.65 of it remains
        assert await subscribe(store, "change", utc(2026, 4, 11, 12), "pro") == "upgraded"
        await run_cycle(store, utc(2026, 6, 1))
        april, may = await list_invoices(store, "acme")
        assert lines(april) == [
            ("flat_fee", "Flat fee", 1000),                     # Starter at the period's start
            ("proration", "Unused time on Starter", -650),      # 1000 x 0.65
            ("proration", "Remaining time on Pro", 1950),       # 3000 x 0.65
            (*CPU, 100),                                        # Pro's 0.10 x 10
        ]
        assert april["amount"] == 1000 - 650 + 1950 + 100
        assert [li[0] for li in lines(may)] == ["flat_fee", "usage"]
        assert may["amount"] == 3000


async def test_a_downgrade_mid_period_takes_effect_at_the_period_end_without_proration(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER, PRO)
        await subscribe(store, "start", utc(2026, 4, 1, 8), "pro")
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2026, 4, 20), "10")
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2026, 5, 20), "10")
        assert await subscribe(store, "change", utc(2026, 4, 11, 12),
                               "starter") == "downgrade_scheduled"
        view = await subscription_of(store.db, "acme")
        assert view is not None
        assert (view.plan_code, view.scheduled_plan_code, view.scheduled_at) == (
            "pro", "starter", utc(2026, 5, 1))
        await run_cycle(store, utc(2026, 6, 1))
        april, may = await list_invoices(store, "acme")
        assert lines(april) == [("flat_fee", "Flat fee", 3000), (*CPU, 100)]
        assert lines(may) == [("flat_fee", "Flat fee", 1000), (*CPU, 200)]
        changes = [e["change"] for e in await outbox(store, "SubscriptionChanged")]
        assert changes == ["started", "downgrade_scheduled", "downgraded"]
        view = await subscription_of(store.db, "acme")
        assert view is not None and (view.plan_code, view.scheduled_plan_code) == (
            "starter", None)


async def test_a_cancel_bills_the_last_periods_usage_and_nothing_after_it(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER)
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2026, 4, 25), "5")
        assert await subscribe(store, "cancel", utc(2026, 4, 20)) == "cancel_scheduled"
        await run_cycle(store, utc(2026, 5, 1))
        await run_cycle(store, utc(2026, 8, 1))
        [april] = await list_invoices(store, "acme")
        assert lines(april) == [("flat_fee", "Flat fee", 1000), (*CPU, 100)]
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.status == "canceled"
        changes = [e["change"] for e in await outbox(store, "SubscriptionChanged")]
        assert changes == ["started", "cancel_scheduled", "ended"]


async def test_a_subscription_whose_checkout_never_completes_creates_no_invoice(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER)  # the tenant opened a Checkout Session, nothing came
        await run_cycle(store, utc(2026, 9, 1))
        assert await list_invoices(store, "acme") == []
        assert await subscription_of(store.db, "acme") is None
        assert await current_config(store.db, "acme") is None


async def test_a_start_on_a_configured_tenant_keeps_its_billing_day_and_prorates_the_stub(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, PRO)
        # billed on the 1st since March; a billing day change to the 15th on 2 April makes
        # 1..15 April a stub of the grid period 15 March..15 April (31 days)
        await apply_config(store, config("acme", occurred_at=utc(2026, 3, 1).isoformat(),
                                         effective_from="2026-03-01"))
        await apply_config(store, config("acme", occurred_at=utc(2026, 3, 20).isoformat(),
                                         effective_from="2026-03-01",
                                         settings={"billing_day_of_month": 15}))
        await run_cycle(store, utc(2026, 4, 1))
        # 3 April 00:00 is 2 of the stub's 14 days in: 12 / 14 remain
        assert await subscribe(store, "start", utc(2026, 4, 3), "pro") == "started"
        await run_cycle(store, utc(2026, 5, 15))
        _, stub, full = await list_invoices(store, "acme")
        assert span(stub) == (utc(2026, 4, 1), utc(2026, 4, 15))
        # the stub's fees: 1000 x 14/31 and 3000 x 14/31, then x 12/14 of the seconds
        assert lines(stub)[:3] == [
            ("flat_fee", "Flat fee, prorated 14/31 days", 452),  # 451.6.. -> 452
            ("proration", "Unused time on previous pricing", -387),  # 1000 x 12/31 = 387.09
            ("proration", "Remaining time on Pro", 1161),  # 3000 x 12/31 = 1161.29
        ]
        assert (span(full), lines(full)[0]) == ((utc(2026, 4, 15), utc(2026, 5, 15)),
                                                ("flat_fee", "Flat fee", 3000))


async def test_two_cycles_at_once_apply_a_scheduled_downgrade_once(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store, open_store(common_settings) as other:
        await add_plans(store, STARTER, PRO)
        await subscribe(store, "start", utc(2026, 4, 1, 8), "pro")
        await subscribe(store, "change", utc(2026, 4, 11), "starter")
        await asyncio.gather(run_cycle(store, utc(2026, 5, 2)), run_cycle(other, utc(2026, 5, 2)))
        changes = [e["change"] for e in await outbox(store, "SubscriptionChanged")]
        assert changes == ["started", "downgrade_scheduled", "downgraded"]
        assert len(await outbox(store, "UsageLimitsChanged")) == 3
        assert await store.configs.count_documents({"tenant_id": "acme"}) == 2
        [april] = await list_invoices(store, "acme")
        assert lines(april)[0] == ("flat_fee", "Flat fee", 3000)


async def test_a_command_after_a_scheduled_change_is_due_applies_that_change_first(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER, PRO)
        await subscribe(store, "start", utc(2026, 4, 1, 8), "pro")
        await subscribe(store, "change", utc(2026, 4, 11), "starter")
        # no cycle ran since 1 May: the upgrade of 16 May (15 of 31 days in) starts from Starter
        assert await subscribe(store, "change", utc(2026, 5, 16), "pro") == "upgraded"
        await run_cycle(store, utc(2026, 6, 1))
        april, may = await list_invoices(store, "acme")
        assert lines(april)[0] == ("flat_fee", "Flat fee", 3000)
        assert lines(may)[:3] == [
            ("flat_fee", "Flat fee", 1000),
            ("proration", "Unused time on Starter", -516),     # 1000 x 16/31 = 516.1
            ("proration", "Remaining time on Pro", 1548),      # 3000 x 16/31 = 1548.4
        ]
        changes = [e["change"] for e in await outbox(store, "SubscriptionChanged")]
        assert changes == ["started", "downgrade_scheduled", "downgraded", "upgraded"]


async def test_a_subscription_started_again_after_one_ended_bills_no_gap(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER, PRO)
        await subscribe(store, "cancel", utc(2026, 4, 10))
        await run_cycle(store, utc(2026, 5, 2))  # April invoiced, the subscription ended
        # the tenant comes back on 10 July (billing day 1 kept): a stub to 1 August
        assert await subscribe(store, "start", utc(2026, 7, 10, 9), "pro") == "started"
        await run_cycle(store, utc(2026, 9, 1))
        spans = [span(d) for d in await list_invoices(store, "acme")]
        assert spans == [(utc(2026, 4, 1), utc(2026, 5, 1)), (utc(2026, 7, 10), utc(2026, 8, 1)),
                         (utc(2026, 8, 1), utc(2026, 9, 1))]
        stub = (await list_invoices(store, "acme"))[1]
        assert lines(stub)[:2] == [("flat_fee", "Flat fee, prorated 22/31 days", 2129),
                                   (*CPU, 0)]  # 3000 x 22/31 = 2129.03, no proration


async def test_a_restart_before_the_cycle_invoiced_the_ended_period_still_invoices_it(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER)
        await subscribe(store, "cancel", utc(2026, 4, 10))
        assert await subscribe(store, "start", utc(2026, 6, 1, 9), "starter") == "started"
        await run_cycle(store, utc(2026, 7, 2))
        await run_cycle(store, utc(2026, 7, 2))
        spans = [span(d) for d in await list_invoices(store, "acme")]
        assert spans == [(utc(2026, 4, 1), utc(2026, 5, 1)), (utc(2026, 6, 1), utc(2026, 7, 1))]


async def test_after_a_cancel_ended_the_tenant_may_subscribe_in_another_currency(
    common_settings: CommonSettings,
) -> None:
    euro = plan("euro", 2500, "0.10", currency="EUR")
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER, euro)
        await subscribe(store, "cancel", utc(2026, 4, 10))
        await run_cycle(store, utc(2026, 5, 2))
        assert await subscribe(store, "start", utc(2026, 6, 1, 9), "euro") == "started"
        await run_cycle(store, utc(2026, 7, 2))
        april, june = await list_invoices(store, "acme")
        assert (april["currency"], june["currency"], june["amount"]) == ("USD", "EUR", 2500)
