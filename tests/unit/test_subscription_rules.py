"""The pure subscription rules (docs/plans.md, "Subscriptions"): what an upgrade is, what is
refused, the configuration a plan writes, and the version a scheduled change must not price."""

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts import BillingConfigSubmitted, Plan
from contracts.config import Actor
from services.common.errors import PermanentError
from services.invoicer.subscriptions import (
    check_change,
    is_upgrade,
    keep_plan_pricing,
    plan_config,
)
from services.invoicer.versions import ConfigVersion, in_force

pytestmark = pytest.mark.unit
ACTOR = Actor(user_id="t-1", role="tenant")


def plan(code: str, amount: int, **fields: Any) -> Plan:
    return Plan.model_validate({"code": code, "name": code.title(), "currency": "EUR",
                                "billing_frequency": "monthly", "flat_amount": amount,
                                **fields})


def test_only_a_dearer_plan_in_the_same_currency_and_frequency_is_an_upgrade() -> None:
    starter = plan("starter", 1000)
    assert is_upgrade(starter, plan("pro", 3000))
    assert not is_upgrade(starter, plan("tiny", 500))
    assert not is_upgrade(starter, plan("yearly", 9000, billing_frequency="annually"))
    assert not is_upgrade(starter, plan("same", 1000))


@pytest.mark.parametrize(("new", "version", "reason"), [
    (plan("starter", 1000), 1, "same_plan"),
    (plan("dollars", 3000, currency="USD"), 1, "currency_mismatch"),
])
def test_a_change_to_the_same_plan_or_another_currency_is_refused(
    new: Plan, version: int, reason: str,
) -> None:
    with pytest.raises(PermanentError) as caught:
        check_change(plan("starter", 1000), 1, new, version)
    assert caught.value.reason == reason


def test_a_new_version_of_the_same_plan_is_a_change() -> None:
    check_change(plan("starter", 1000), 1, plan("starter", 1000), 2)


def test_a_new_tenant_is_billed_on_the_start_day_in_its_zone_with_the_defaults() -> None:
    at = datetime(2026, 1, 30, 23, 30, tzinfo=UTC)  # 31 January in Auckland
    config = plan_config(plan("pro", 3000), tenant_id="t-1", at=at, event_id="e-1",
                         actor=ACTOR, base=None, billing_email="b@t.example", tenant_name="T",
                         timezone="Pacific/Auckland")
    s = config.settings
    assert (s.billing_day_of_month, str(config.effective_from)) == (31, "2026-01-31")
    assert (s.flat_rate_amount, s.currency, s.billing_frequency) == (3000, "EUR", "monthly")
    assert (s.auto_generate_invoices, s.payment_due_days, s.email_notifications) == (
        True, 14, True)


def test_a_new_tenant_without_a_billing_email_is_refused() -> None:
    with pytest.raises(PermanentError) as caught:
        plan_config(plan("pro", 3000), tenant_id="t-1", at=datetime(2026, 1, 1, tzinfo=UTC),
                    event_id="e", actor=ACTOR, base=None, billing_email=None, tenant_name=None,
                    timezone=None)
    assert caught.value.reason == "billing_email_required"


def operator(at: datetime, amount: int, day: int = 1) -> BillingConfigSubmitted:
    return BillingConfigSubmitted.model_validate({
        "tenant_id": "t-1", "actor": {"user_id": "ops", "role": "super"},
        "occurred_at": at.isoformat(), "effective_from": "2026-01-01",
        "settings": {"flat_rate_amount": amount, "currency": "EUR",
                     "billing_frequency": "monthly", "billing_email": "b@t.example",
                     "auto_generate_invoices": True, "billing_day_of_month": day,
                     "payment_due_days": 30, "email_notifications": False}})


def test_a_plan_keeps_the_operators_billing_day_and_an_operator_keeps_the_plans_price() -> None:
    base = operator(datetime(2026, 1, 1, tzinfo=UTC), 500, day=7)
    config = plan_config(plan("pro", 3000), tenant_id="t-1", at=datetime(2026, 2, 3, tzinfo=UTC),
                         event_id="e", actor=ACTOR, base=base, billing_email=None,
                         tenant_name=None, timezone=None)
    assert (config.settings.billing_day_of_month, config.settings.payment_due_days) == (7, 30)
    kept = keep_plan_pricing(operator(datetime(2026, 2, 5, tzinfo=UTC), 1, day=9), config)
    assert (kept.settings.flat_rate_amount, kept.settings.billing_day_of_month) == (3000, 9)


def test_a_version_scheduled_for_a_period_end_cuts_the_next_period_not_the_ending_one() -> None:
    end = datetime(2026, 2, 1, tzinfo=UTC)
    first = ConfigVersion(1, operator(datetime(2026, 1, 1, tzinfo=UTC), 3000))
    scheduled = ConfigVersion(2, operator(end, 1000), scheduled=True)
    assert in_force([first, scheduled], end, ending=True).number == 1
    assert in_force([first, scheduled], end).number == 2
    operators = [first, ConfigVersion(2, operator(end, 1000))]
    assert in_force(operators, end, ending=True).number == 2  # the operator's rule unchanged
