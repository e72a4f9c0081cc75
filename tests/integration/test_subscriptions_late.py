"""Subscriptions meeting commands in an unusual order (docs/plans.md, "Subscriptions"): an
operator's configuration accepted between a period's end and the cycle's rollover or after
the subscription ended, starts and restarts on another grid or currency, a late checkout, and
a forced issue past the subscription's end."""

from datetime import date, datetime
from typing import Any

import pytest

from contracts.config import Coupon, Credit
from services.common.errors import PermanentError
from services.common.settings import CommonSettings
from services.invoicer.adapters.subscriptions import subscription_of
from services.invoicer.api import current_config
from services.invoicer.handlers import apply_config
from services.invoicer.issue import Forced, IssueRefused, issue_for_period_end
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from tests.integration.test_invoicer_support import config, open_store, utc
from tests.integration.test_subscriptions_support import (
    PRO,
    STARTER,
    add_plans,
    complete_checkout,
    lines,
    outbox,
    plan,
    start_on_starter,
    subscribe,
)

pytestmark = pytest.mark.integration
CPU = ("usage", "cpu_hours (per unit)", 0)
YEARLY = plan("yearly", 120000, "0.10", billing_frequency="annually")
MONTHLY = plan("monthly", 1000, "0.10")
EURO = plan("euro", 2000, "0.10", currency="EUR")


async def changes(store: Any) -> list[tuple[str, datetime]]:
    return [(e["change"], datetime.fromisoformat(e["effective_at"]))
            for e in await outbox(store, "SubscriptionChanged")]


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


async def test_a_start_on_another_frequency_takes_effect_at_the_period_end(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, YEARLY)
        await apply_config(store, config("acme", occurred_at=utc(2026, 3, 1).isoformat(),
                                         effective_from="2026-03-01"))
        assert await subscribe(store, "start", utc(2026, 4, 16), "yearly") == "started"
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.scheduled_at == utc(2026, 5, 1)
        with pytest.raises(PermanentError) as refused:
            await subscribe(store, "change", utc(2026, 4, 17), "yearly", event_id="c1")
        assert refused.value.reason == "start_scheduled"
        await run_cycle(store, utc(2026, 5, 2))
        march, april = await list_invoices(store, "acme")
        # April stays on the monthly configuration: no proration lines across the grids
        assert (april["period_start"], april["period_end"]) == (utc(2026, 4, 1), utc(2026, 5, 1))
        assert [k for k, _, _ in lines(april)] == ["flat_fee", "usage"]
        assert lines(april)[0] == lines(march)[0]
        yearly = await current_config(store.db, "acme")
        assert (yearly.settings.billing_frequency, yearly.occurred_at) == \
            ("annually", utc(2026, 5, 1))
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.scheduled_plan_code is None
        assert await changes(store) == [("started", utc(2026, 5, 1))] * 2


async def test_a_restart_on_another_frequency_bills_from_the_resume_on_the_new_grid(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, MONTHLY, YEARLY)
        await subscribe(store, "start", utc(2026, 1, 1, 8), "monthly")
        await subscribe(store, "cancel", utc(2026, 1, 10), None)
        await run_cycle(store, utc(2026, 2, 2))
        assert await subscribe(store, "start", utc(2026, 3, 10, 9), "yearly",
                               event_id="again") == "started"
        await run_cycle(store, utc(2027, 4, 2))
        january, stub = await list_invoices(store, "acme")
        assert (january["period_start"], january["period_end"]) == \
            (utc(2026, 1, 1), utc(2026, 2, 1))
        # yearly on the tenant's grid (billing day 1, January): one stub from the resume
        assert (stub["period_start"], stub["period_end"]) == (utc(2026, 3, 10), utc(2027, 1, 1))
        assert lines(stub)[0] == ("flat_fee", "Flat fee, prorated 297/365 days", 97644)


async def test_a_restart_in_another_currency_drops_the_coupon_and_the_credits(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, MONTHLY, EURO)
        await subscribe(store, "start", utc(2026, 1, 1, 8), "monthly")
        current = await current_config(store.db, "acme")
        await apply_config(store, current.model_copy(update={
            "event_id": "op-goodwill", "occurred_at": utc(2026, 1, 2),
            "actor": current.actor.model_copy(update={"role": "super", "user_id": "ops"}),
            "coupon": Coupon(code="AcmeForever5", amount_off=100, duration="forever"),
            "credits": (Credit(credit_id="c1", amount=150, granted_at=utc(2026, 1, 2),
                               granted_by="ops", reason="goodwill"),)}))
        await subscribe(store, "cancel", utc(2026, 1, 10), None)
        await run_cycle(store, utc(2026, 2, 2))
        assert await subscribe(store, "start", utc(2026, 3, 1, 9), "euro",
                               event_id="again") == "started"
        restarted = await current_config(store.db, "acme")
        assert (restarted.settings.currency, restarted.coupon, restarted.credits) == \
            ("EUR", None, ())
        await run_cycle(store, utc(2026, 4, 2))
        january, march = await list_invoices(store, "acme")
        assert [k for k, _, _ in lines(january)] == ["flat_fee", "usage", "coupon", "credit"]
        assert (march["currency"], lines(march)) == \
            ("EUR", [("flat_fee", "Flat fee", 2000), CPU])


async def test_a_late_checkout_after_an_operator_version_takes_effect_at_that_version(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, PRO)
        await apply_config(store, config("acme", occurred_at=utc(2026, 4, 10, 10).isoformat(),
                                         effective_from="2026-04-01"))
        assert await complete_checkout(store, utc(2026, 4, 10, 9), "pro") == "started"
        current = await current_config(store.db, "acme")
        assert (current.settings.flat_rate_amount, current.occurred_at) == \
            (3000, utc(2026, 4, 10, 10))
        await run_cycle(store, utc(2026, 5, 2))
        await run_cycle(store, utc(2026, 6, 2))
        april, may = await list_invoices(store, "acme")
        # from 10 April 10:00: 1,778,400 of the period's 2,592,000 seconds remain
        assert lines(april)[:3] == [
            ("flat_fee", "Flat fee", 1000),
            ("proration", "Unused time on previous pricing", -686),  # 686.11
            ("proration", "Remaining time on Pro", 2058)]  # 2058.33
        assert lines(may)[0] == ("flat_fee", "Flat fee", 3000)


async def test_an_operator_version_after_the_subscription_ended_resumes_billing(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER, PRO)
        await subscribe(store, "cancel", utc(2026, 4, 10), None)
        await run_cycle(store, utc(2026, 6, 2))
        assert len(await list_invoices(store, "acme")) == 1  # April, then nothing
        await apply_config(store, config("acme", occurred_at=utc(2026, 6, 10).isoformat(),
                                         effective_from="2026-06-15"))
        await run_cycle(store, utc(2026, 7, 2))
        april, june = await list_invoices(store, "acme")
        # from the later of the end (1 May) and 15 June: May and early June are not billed
        assert (june["period_start"], june["period_end"]) == (utc(2026, 6, 15), utc(2026, 7, 1))
        assert lines(june)[0] == ("flat_fee", "Flat fee, prorated 16/30 days", 533)
        # billed without a subscription again: a start prorates against that pricing
        assert await subscribe(store, "start", utc(2026, 7, 16), "pro",
                               event_id="later") == "started"
        await run_cycle(store, utc(2026, 8, 2))
        july = (await list_invoices(store, "acme"))[-1]
        assert (july["period_start"], [d for _, d, _ in lines(july)][:3]) == (utc(2026, 7, 1), [
            "Flat fee", "Unused time on previous pricing", "Remaining time on Pro"])


async def test_a_forced_issue_after_the_subscription_ended_is_refused(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await start_on_starter(store, STARTER)
        await subscribe(store, "cancel", utc(2026, 4, 10), None)
        await run_cycle(store, utc(2026, 5, 2))
        with pytest.raises(IssueRefused, match="ended at 2026-05-01.*no period after its end"):
            await issue_for_period_end(store, "acme", date(2026, 6, 1), as_of=utc(2026, 6, 2),
                                       forced=Forced("ops", "customer asked"))
        assert len(await list_invoices(store, "acme")) == 1


async def test_a_start_in_another_currency_bills_it_from_the_period_end_without_the_coupon(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, EURO)
        await apply_config(store, config(
            "acme", occurred_at=utc(2026, 3, 1).isoformat(), effective_from="2026-03-01",
            coupon={"code": "AcmeForever5", "amount_off": 100, "duration": "forever"}))
        assert await subscribe(store, "start", utc(2026, 3, 10), "euro") == "started"
        await run_cycle(store, utc(2026, 5, 2))
        march, april = await list_invoices(store, "acme")
        assert (march["currency"], [k for k, _, _ in lines(march)]) == \
            ("USD", ["flat_fee", "usage", "coupon"])  # no proration across currencies
        assert (april["currency"], lines(april)) == \
            ("EUR", [("flat_fee", "Flat fee", 2000), CPU])
