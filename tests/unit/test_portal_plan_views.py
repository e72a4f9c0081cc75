"""The Plan page's cards (`services.api.portal.plan_views`): price and limit texts, and which
switch each plan offers (docs/plans.md: upgrade now, other changes at the period's end,
another currency refused)."""

from datetime import timedelta

from contracts.plans import Plan, PlanLimit
from services.api.portal.plan_views import (
    checkout_wait,
    is_upgrade,
    limit_texts,
    plan_cards,
    price_text,
)


def plan(code: str, flat: int, currency: str = "USD", frequency: str = "monthly",
         limits: tuple[PlanLimit, ...] = ()) -> Plan:
    return Plan(code=code, name=code.title(), currency=currency, billing_frequency=frequency,
                flat_amount=flat, limits=limits)


def test_prices_are_formatted_in_the_plans_currency_per_period() -> None:
    assert price_text(plan("pro", 4900), "en_US") == "$49.00 per month"
    assert price_text(plan("pro", 4900, "EUR", "annually"), "de_DE") == "49,00\xa0€ per year"


def test_limits_name_the_meter_the_quantity_and_the_kind() -> None:
    limits = (PlanLimit(meter="computations", limit=1000, hard=True),
              PlanLimit(meter="storage_gb", limit=500))
    hard, soft = limit_texts(plan("pro", 4900, frequency="quarterly", limits=limits), "en_US")
    assert hard.startswith("Computations: up to 1,000") and "per quarter" in hard
    assert "hard limit" in hard
    assert "500 GB" in soft and "soft limit: usage beyond it is billed" in soft


def test_an_upgrade_needs_same_currency_and_frequency_and_a_larger_flat_amount() -> None:
    starter = plan("starter", 1900)
    assert is_upgrade(starter, plan("pro", 4900))
    assert not is_upgrade(starter, plan("basic", 900))
    assert not is_upgrade(starter, plan("same", 1900))
    assert not is_upgrade(starter, plan("yearly", 19000, frequency="annually"))
    assert not is_upgrade(starter, plan("euro", 4900, currency="EUR"))


def test_each_card_offers_what_the_subscription_allows() -> None:
    catalog = [(1, plan("starter", 1900)), (1, plan("pro", 4900)), (1, plan("basic", 900)),
               (1, plan("euro", 4900, currency="EUR"))]
    fresh = {c.code: c.offer for c in plan_cards(catalog, None, None, "en_US")}
    assert fresh == dict.fromkeys(("starter", "pro", "basic", "euro"), "start")
    cards = {c.code: c for c in plan_cards(catalog, (1, catalog[0][1]), "Jun 30, 2013",
                                           "en_US")}
    assert cards["starter"].offer == "current" and cards["starter"].note is None
    assert cards["pro"].offer == "upgrade" and "takes effect now" in str(cards["pro"].note)
    assert cards["basic"].offer == "downgrade"
    assert cards["basic"].note == "Takes effect at the end of the current period (Jun 30, 2013)."
    assert cards["euro"].offer == "other_currency"
    waiting = plan_cards(catalog, (1, catalog[0][1]), None, "en_US", can_change=False)
    assert [c.offer for c in waiting] == ["current", "none", "none", "other_currency"]


def test_a_newer_version_of_the_current_plan_is_a_switch() -> None:
    starter_v2 = plan("starter", 2900)
    [card] = plan_cards([(2, starter_v2)], (1, plan("starter", 1900)), None, "en_US")
    assert card.offer == "upgrade" and card.version == 2


def test_after_the_checkout_the_page_refreshes_only_while_it_waits_for_stripe() -> None:
    seconds = timedelta(seconds=1)
    assert checkout_wait(0 * seconds, pending=True) == "refresh"
    assert checkout_wait(119 * seconds, pending=True) == "refresh"
    assert checkout_wait(120 * seconds, pending=True) == "late"
    assert checkout_wait(3 * seconds, pending=False) == "refresh"  # the webhook's moment
    assert checkout_wait(10 * seconds, pending=False) == "none"
    assert checkout_wait(600 * seconds, pending=False) == "none"
