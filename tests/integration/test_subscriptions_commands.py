"""Subscription commands against MongoDB: once per event id however often they arrive, a
Checkout Session's completion starts one subscription, and every refusal is audited with its
reason (docs/plans.md, "Subscriptions")."""

from typing import Any

import pytest

from contracts.config import Actor
from services.common.errors import Forbidden, PermanentError
from services.common.settings import CommonSettings
from services.common.signing import sign
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.adapters.subscriptions import subscription_of
from services.invoicer.api import current_config, subscription_outcome
from services.invoicer.handlers import apply_config
from services.invoicer.names import OUTBOX
from services.invoicer.subscription_handlers import apply_signed_subscription, apply_subscription
from tests.integration.test_invoicer_support import config, open_store, utc
from tests.integration.test_subscriptions_support import (
    PRO,
    STARTER,
    add_plans,
    complete_checkout,
    plan,
    request,
    subscribe,
)

pytestmark = pytest.mark.integration
KEY = b"k" * 32


async def state(store: InvoicerStore) -> tuple[int, int, Any]:
    """(configuration versions, outbox entries, subscription) of tenant acme."""
    return (await store.configs.count_documents({"tenant_id": "acme"}),
            await store.db[OUTBOX].count_documents({}),
            await subscription_of(store.db, "acme"))


async def test_redelivered_commands_change_nothing(common_settings: CommonSettings) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER, PRO)
        commands = [request("start", utc(2026, 4, 1), "starter"),
                    request("change", utc(2026, 4, 5), "pro"),
                    request("change", utc(2026, 4, 6), "starter"),
                    request("cancel", utc(2026, 4, 7))]
        for command in commands:
            assert await apply_subscription(store, command) is not None
            before = await state(store)
            assert await apply_subscription(store, command) is None
            assert await state(store) == before


async def test_a_second_cancel_changes_nothing(common_settings: CommonSettings) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER)
        await subscribe(store, "start", utc(2026, 4, 1), "starter")
        assert await subscribe(store, "cancel", utc(2026, 4, 2)) == "cancel_scheduled"
        before = await state(store)
        assert await subscribe(store, "cancel", utc(2026, 4, 3)) is None
        assert await state(store) == before


async def test_a_checkout_completed_twice_starts_one_subscription(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, PRO)
        assert await complete_checkout(store, utc(2026, 4, 1, 10), "pro") == "started"
        before = await state(store)
        assert await complete_checkout(store, utc(2026, 4, 1, 10), "pro") is None
        assert await state(store) == before
        view = before[2]
        assert view is not None and (view.status, view.started_at) == (
            "active", utc(2026, 4, 1, 10))


async def refused(store: InvoicerStore, action: str, plan_code: str | None,
                  **fields: Any) -> str:
    command = request(action, utc(2026, 4, 9), plan_code, **fields)
    with pytest.raises(PermanentError) as caught:
        await apply_subscription(store, command)
    audit = await store.audit.find_one({"_id": command.event_id})
    assert audit is not None and audit["why"]["reason"] == caught.value.reason
    return caught.value.reason


async def test_each_refusal_is_audited_with_its_reason(common_settings: CommonSettings) -> None:
    euro = plan("euro", 5000, "0.10", currency="EUR")
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER, PRO, euro)
        assert await refused(store, "change", "pro") == "not_subscribed"
        assert await refused(store, "cancel", None) == "not_subscribed"
        assert await refused(store, "start", "gold") == "plan_unknown"
        assert await refused(store, "start", "pro", plan_version=2) == "plan_unknown"
        assert await refused(store, "start", "pro", billing_email=None) == (
            "billing_email_required")
        assert await refused(store, "start", "pro",
                             actor={"user_id": "x", "role": "viewer"}) == "forbidden"
        await subscribe(store, "start", utc(2026, 4, 1), "starter")
        assert await refused(store, "start", "pro") == "already_subscribed"
        assert await refused(store, "change", "starter") == "same_plan"
        assert await refused(store, "change", "euro") == "currency_mismatch"
        await subscribe(store, "cancel", utc(2026, 4, 2))
        assert await refused(store, "change", "pro") == "cancel_scheduled"
        _, _, view = await state(store)
        assert view is not None and (view.plan_code, view.cancel_at_period_end) == (
            "starter", True)


async def test_only_super_may_name_a_plan_version_that_is_not_the_newest(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER, PRO, plan("starter", 2000, "0.20"))
        assert await refused(store, "start", "starter", plan_version=1) == (
            "plan_version_not_current")
        assert await subscribe(store, "start", utc(2026, 4, 1), "starter",
                               plan_version=2) == "started"
        assert await refused(store, "change", "starter", plan_version=1) == (
            "plan_version_not_current")
        operator = {"user_id": "admin", "role": "super"}
        assert await subscribe(store, "change", utc(2026, 4, 2), "starter", plan_version=1,
                               actor=operator) is not None
        _, _, view = await state(store)
        assert view is not None and view.scheduled_plan_code == "starter"


async def test_a_start_in_another_currency_than_the_tenants_configuration_waits_for_the_end(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, plan("euro", 5000, "0.10", currency="EUR"))
        await apply_config(store, config("acme", occurred_at=utc(2026, 3, 1).isoformat(),
                                         effective_from="2026-03-01"))
        assert await subscribe(store, "start", utc(2026, 3, 10), "euro") == "started"
        assert (await current_config(store.db, "acme")).settings.currency == "USD"
        view = await subscription_of(store.db, "acme")
        assert view is not None and view.scheduled_at == utc(2026, 4, 1)


async def test_an_unsigned_or_badly_signed_command_is_refused_as_forbidden(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER)
        unsigned = request("start", utc(2026, 4, 1), "starter")
        forged = sign(request("start", utc(2026, 4, 1), "starter"), b"x" * 32)
        for command in (unsigned, forged):
            with pytest.raises(Forbidden):
                await apply_signed_subscription(store, command, KEY)
        assert await subscription_of(store.db, "acme") is None
        signed = sign(request("start", utc(2026, 4, 1), "starter"), KEY)
        assert await apply_signed_subscription(store, signed, KEY) == "started"


async def test_an_operators_configuration_keeps_the_plans_pricing(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, PRO)
        await subscribe(store, "start", utc(2026, 4, 1), "pro")
        await apply_config(store, config("acme", occurred_at=utc(2026, 4, 3).isoformat(),
                                         settings={"billing_day_of_month": 9,
                                                   "flat_rate_amount": 1}))
        stored = await store.tenant("acme")
        assert stored is not None
        s = stored["config"]["settings"]
        assert (s["flat_rate_amount"], s["billing_day_of_month"]) == (3000, 9)
        assert stored["config"]["price_plan"] == PRO.price_plan.model_dump(mode="json")
        assert Actor.model_validate(stored["config"]["actor"]).role == "super"


async def test_a_commands_outcome_is_applied_or_its_refusal(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await add_plans(store, STARTER)
        start = request("start", utc(2026, 4, 1), "starter")
        unknown = request("change", utc(2026, 4, 2), "gold")
        assert await subscription_outcome(store.db, start.event_id) is None
        await apply_subscription(store, start)
        with pytest.raises(PermanentError):
            await apply_subscription(store, unknown)
        assert await subscription_outcome(store.db, start.event_id) == "applied"
        assert await subscription_outcome(store.db, unknown.event_id) == "plan_unknown"
