"""The admin console's configuration form: pre-filled from the version in force, checked field
by field, and the API's refusals mapped back onto the fields (docs/portal.md, "Admin
console")."""

from datetime import UTC, date, datetime
from typing import Any

import pytest

from contracts.config import BillingSettings, PricePlan
from services.api.models_reads import ConfigInForce
from services.api.portal import admin_form
from services.api.portal.admin_views import period_label

pytestmark = pytest.mark.unit


def in_force(currency: str = "USD", flat: int = 2900) -> ConfigInForce:
    return ConfigInForce(
        version=3, timezone="Africa/Nairobi", effective_from=date(2013, 6, 15), coupon=None,
        credits=[], settings=BillingSettings(
            flat_rate_amount=flat, currency=currency, billing_frequency="quarterly",
            billing_email="billing@initech.example", auto_generate_invoices=False,
            billing_day_of_month=15, payment_due_days=30, email_notifications=True),
        price_plan=PricePlan.model_validate({"charges": [
            {"meter": "cpu_hours", "model": "per_unit", "unit_price": "0.05"}]}))


def test_the_form_shows_the_flat_rate_in_major_units_and_the_plan_as_json() -> None:
    values = admin_form.prefill(in_force())
    assert values["flat_rate_amount"] == "29.00" and values["billing_day_of_month"] == "15"
    assert values["auto_generate_invoices"] is False and values["email_notifications"] is True
    assert '"unit_price": "0.05"' in values["price_plan"]
    assert admin_form.prefill(in_force("JPY", 2900))["flat_rate_amount"] == "2900"


def test_a_prefilled_form_parses_back_to_the_same_configuration() -> None:
    current = in_force()
    form: dict[str, Any] = {k: v for k, v in admin_form.prefill(current).items()
                            if not isinstance(v, bool)}
    form["email_notifications"] = "on"
    body, errors = admin_form.parse(admin_form.submitted(form), current)
    assert errors == {} and body is not None
    assert body.settings == current.settings and body.price_plan == current.price_plan
    assert body.effective_from == date(2013, 6, 15) and body.timezone == "Africa/Nairobi"


@pytest.mark.parametrize(("name", "typed", "message"), [
    ("flat_rate_amount", "29.001", "USD amounts have fewer decimal places."),
    ("flat_rate_amount", "-1", "Enter an amount of zero or more."),
    ("flat_rate_amount", "lots", "Enter an amount such as 29.00."),
    ("currency", "XYZ", "Enter an ISO 4217 currency code such as USD."),
    ("billing_frequency", "weekly", "Choose monthly, quarterly or annually."),
    ("billing_email", "", "Enter the email address invoices are sent to."),
    ("billing_day_of_month", "0", "Enter a number from 1 to 31."),
    ("payment_due_days", "2.5", "Enter a whole number."),
    ("timezone", "Mars/Olympus", "Enter an IANA time zone such as Europe/Berlin."),
])
def test_each_field_gets_its_own_message(name: str, typed: str, message: str) -> None:
    current = in_force()
    values = {**admin_form.prefill(current), name: typed}
    body, errors = admin_form.parse(values, current)
    assert body is None and errors == {name: message}


def test_contract_and_api_refusals_land_on_their_fields() -> None:
    current = in_force()
    body, errors = admin_form.parse({**admin_form.prefill(current),
                                     "billing_email": "not an address"}, current)
    assert body is None and list(errors) == ["billing_email"]
    body, errors = admin_form.parse({**admin_form.prefill(current), "price_plan": "[1"},
                                    current)
    assert body is None and errors["price_plan"].startswith("The price plan is not valid JSON")
    assert admin_form.errors_from_locs([
        {"loc": ["body", "settings", "currency"], "msg": "unknown"},
        {"loc": ["body", "price_plan", "charges", 0], "msg": "twice"},
        {"loc": ["body", "price_plan", "charges", 1], "msg": "again"},
        {"loc": ["body", "other"], "msg": "odd"},
    ]) == {"currency": "unknown", "price_plan": "charges.0: twice; charges.1: again; other: odd"}
    assert admin_form.errors_from_detail("bad timezone 'X'") == {"timezone": "bad timezone 'X'"}
    assert admin_form.errors_from_detail("meter priced twice") == {
        "price_plan": "meter priced twice"}


def test_periods_read_as_first_and_last_day_in_the_tenants_zone() -> None:
    start = datetime(2013, 6, 14, 21, tzinfo=UTC)  # 15 June, 00:00 in Nairobi
    end = datetime(2013, 9, 14, 21, tzinfo=UTC)
    assert period_label(start, end, "Africa/Nairobi") == "2013-06-15 to 2013-09-14"
