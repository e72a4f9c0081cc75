"""The billing schedule against MongoDB: configuration versions in force, schedule changes,
and the stub period a change produces."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.common.settings import CommonSettings
from services.invoicer.handlers import apply_config
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import next_due, run_cycle
from tests.integration.test_invoicer_support import collect_usage, config, open_store, utc

pytestmark = pytest.mark.integration


def submitted(at: datetime, tenant_id: str = "acme", **overrides: Any) -> Any:
    """A configuration command submitted (occurred) at `at`."""
    return config(tenant_id, occurred_at=at.isoformat(), **overrides)


def spans(docs: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    return [(d["period_start"].astimezone(UTC), d["period_end"].astimezone(UTC)) for d in docs]


async def test_a_billing_day_change_leaves_no_unbilled_gap_and_one_stub_period(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, submitted(utc(2013, 5, 20)))
        await run_cycle(store, utc(2013, 7, 1))
        # Mid-July the operator moves the billing day to the 15th: July stays a full period
        # (the version in force at its start), then one stub up to 15 August.
        await apply_config(store, submitted(utc(2013, 7, 10),
                                            settings={"billing_day_of_month": 15}))
        await run_cycle(store, utc(2013, 9, 16))

        got = spans(await list_invoices(store, "acme"))
        assert got == [
            (utc(2013, 6, 1), utc(2013, 7, 1)),
            (utc(2013, 7, 1), utc(2013, 8, 1)),
            (utc(2013, 8, 1), utc(2013, 8, 15)),
            (utc(2013, 8, 15), utc(2013, 9, 15)),
        ]


def kinds(doc: dict[str, Any], kind: str) -> list[tuple[Any, ...]]:
    return [(li["meter"], li["quantity"], li["amount"], li["description"])
            for li in doc["line_items"] if li["kind"] == kind]


async def test_the_stub_after_a_billing_day_change_pays_a_prorated_flat_fee(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, submitted(utc(2013, 5, 20)))
        await apply_config(store, submitted(utc(2013, 7, 10),
                                            settings={"billing_day_of_month": 15}))
        await run_cycle(store, utc(2013, 9, 15))
        june, july, stub, full = await list_invoices(store, "acme")
        assert [d["amount"] for d in (june, july, full)] == [1000, 1000, 1000]
        # 1 Aug .. 15 Aug = 14 days of the grid period 15 Jul .. 15 Aug (31 days):
        # 10.00 x 14 / 31 = 4.516.. -> 4.52
        assert stub["amount"] == 452
        [flat] = [li for li in stub["line_items"] if li["kind"] == "flat_fee"]
        assert (flat["amount"], flat["description"]) == (452, "Flat fee, prorated 14/31 days")


async def test_the_version_in_force_at_a_period_end_prices_that_period(
    common_settings: CommonSettings,
) -> None:
    dearer = {"price_plan": {"charges": [{"meter": "cpu_hours", "model": "per_unit",
                                          "unit_price": "1.00"}]}}
    async with open_store(common_settings) as store:
        await apply_config(store, submitted(utc(2013, 5, 20)))
        await apply_config(store, submitted(utc(2013, 7, 20), settings={
            "flat_rate_amount": 2000}, **dearer))
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 10), "4")
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 7, 10), "4")
        await run_cycle(store, utc(2013, 8, 1))  # both versions known when the cycle runs

        june, july = await list_invoices(store, "acme")
        assert (june["amount"], june["config_version"]) == (1000 + 200, 1)
        assert (july["amount"], july["config_version"]) == (2000 + 400, 2)


async def test_a_currency_change_never_mixes_currencies_and_late_usage_waits_for_its_own(
    common_settings: CommonSettings,
) -> None:
    euro = {"settings": {"currency": "EUR", "flat_rate_amount": 900},
            "price_plan": {"charges": [{"meter": "cpu_hours", "model": "per_unit",
                                        "unit_price": "0.40"}]}}
    async with open_store(common_settings) as store:
        await apply_config(store, submitted(utc(2013, 5, 20)))
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 10), "4")
        await run_cycle(store, utc(2013, 7, 1))
        await apply_config(store, submitted(utc(2013, 7, 20), **euro))
        await collect_usage(store.db, "acme", "cpu_hours", "web", utc(2013, 6, 20), "2")  # late
        await run_cycle(store, utc(2013, 8, 1))
        await apply_config(store, submitted(utc(2013, 8, 20)))  # back to USD
        await run_cycle(store, utc(2013, 9, 1))

        june, july, august = await list_invoices(store, "acme")
        assert (june["currency"], june["amount"]) == ("USD", 1000 + 200)
        # July is priced in EUR: June's late usage (billed in USD) is not adjusted there ...
        assert (july["currency"], july["amount"], kinds(july, "adjustment")) == ("EUR", 900, [])
        # ... but on the next invoice in USD: 2 more cpu_hours at 0.50 = 1.00.
        assert august["currency"] == "USD"
        assert [(m, q, a) for m, q, a, _ in kinds(august, "adjustment")] == [
            ("cpu_hours", Decimal("2"), 100)]
        assert august["amount"] == 1000 + 100


async def test_the_next_due_instant_follows_the_schedule_change_at_the_next_boundary(
    common_settings: CommonSettings,
) -> None:
    late_due = {"payment_due_days": 90}  # keep overdue instants out of the way
    async with open_store(common_settings) as store:
        await apply_config(store, submitted(utc(2013, 5, 20), settings=late_due))
        await run_cycle(store, utc(2013, 7, 1))
        await apply_config(store, submitted(utc(2013, 7, 10), settings={
            **late_due, "billing_day_of_month": 15}))

        assert await next_due(store, utc(2013, 7, 10)) == utc(2013, 8, 1)  # July runs out
        await run_cycle(store, utc(2013, 8, 1))
        assert await next_due(store, utc(2013, 8, 1)) == utc(2013, 8, 15)  # then the stub


async def test_a_credit_carried_in_one_currency_waits_for_an_invoice_in_that_currency(
    common_settings: CommonSettings,
) -> None:
    storage = {"charges": [{"meter": "storage_gb", "model": "per_unit", "unit_price": "0.10"}]}
    euro = {"settings": {"currency": "EUR", "flat_rate_amount": 900}, "price_plan": storage}
    async with open_store(common_settings) as store:
        await apply_config(store, submitted(utc(2013, 5, 20), price_plan=storage))
        await collect_usage(store.db, "acme", "storage_gb", "web", utc(2013, 6, 10, 5), "1000")
        await run_cycle(store, utc(2013, 7, 1))  # June: 10.00 + 1000 GB x 0.10 = 110.00
        await collect_usage(store.db, "acme", "storage_gb", "web", utc(2013, 6, 11, 5), "0")
        await run_cycle(store, utc(2013, 8, 1))  # July: -50.00 for June, 40.00 USD carried
        await apply_config(store, submitted(utc(2013, 8, 10), **euro))
        await run_cycle(store, utc(2013, 9, 1))
        await apply_config(store, submitted(utc(2013, 9, 10), price_plan=storage))
        await run_cycle(store, utc(2013, 10, 1))

        june, july, august, september = await list_invoices(store, "acme")
        assert (july["currency"], july["amount"]) == ("USD", 0)
        assert (august["currency"], august["amount"], kinds(august, "credit")) == (
            "EUR", 900, [])  # the USD credit does not reduce an EUR invoice
        assert (september["currency"], september["amount"]) == ("USD", 0)
        assert [a for _, _, a, _ in kinds(september, "credit")] == [-1000]
