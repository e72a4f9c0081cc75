"""The admin console's plan form, without servers: pre-filled values, exact amounts, limit
rows and a message per wrong field."""

from decimal import Decimal
from typing import Any

import pytest

from contracts import Plan
from services.api.portal.admin_plans_form import (
    EMPTY_LIMIT_ROWS,
    blank,
    errors_from_problem,
    parse,
    prefill,
    submitted,
)

PLAN = Plan.model_validate({
    "code": "starter", "name": "Starter", "currency": "JPY", "billing_frequency": "annually",
    "flat_amount": 12000, "price_plan": {"charges": [
        {"meter": "computations", "model": "per_unit", "unit_price": "0.5"}]},
    "limits": [{"meter": "computations", "limit": "1000", "hard": True}]})


def posted(values: dict[str, Any]) -> dict[str, str]:
    """What a browser sends for `values` (checked checkboxes only)."""
    form = {k: v for k, v in values.items() if k != "limits"}
    for i, row in enumerate(values["limits"]):
        form[f"limit_meter_{i}"], form[f"limit_value_{i}"] = row["meter"], row["limit"]
        if row["hard"]:
            form[f"limit_hard_{i}"] = "on"
    return form


def test_a_prefilled_form_sent_unchanged_is_the_same_plan() -> None:
    values = prefill(PLAN)
    assert values["flat_amount"] == "12000"  # yen have no minor digits
    assert len(values["limits"]) == 1 + EMPTY_LIMIT_ROWS
    body, errors = parse(submitted(posted(values)))
    assert errors == {} and body is not None
    assert Plan.model_validate(dict(body)) == PLAN


def test_amounts_convert_exactly_and_empty_rows_are_skipped() -> None:
    values = {**blank(), "code": "team", "name": "Team", "currency": "usd",
              "flat_amount": "19.90"}
    values["limits"][1] = {"meter": "storage_gb", "limit": "0.5", "hard": False}
    body, errors = parse(submitted(posted(values)))
    assert errors == {} and body is not None
    assert (body.flat_amount, body.currency) == (1990, "USD")
    assert [(lim.meter, lim.limit, lim.hard) for lim in body.limits] == [
        ("storage_gb", Decimal("0.5"), False)]
    assert len(submitted(posted(values))["limits"]) == 1 + EMPTY_LIMIT_ROWS


@pytest.mark.parametrize(("change", "field"), [
    ({"flat_amount": "19.999"}, "flat_amount"),
    ({"flat_amount": "lots"}, "flat_amount"),
    ({"currency": "EURO"}, "currency"),
    ({"billing_frequency": "weekly"}, "billing_frequency"),
    ({"code": "-x"}, "code"),
    ({"name": ""}, "name"),
    ({"charges": "{}"}, "charges"),
    ({"charges": '[{"meter": "x", "model": "graduated"}]'}, "charges"),
    ({"flat_amount": "\u0661\u0662"}, "flat_amount"),  # Arabic-Indic digits
    ({"flat_amount": "1e999999999"}, "flat_amount"),
    ({"flat_amount": "9" * 5000}, "flat_amount"),
    ({"flat_amount": "-1"}, "flat_amount"),
    ({"charges": "[" + "1" * 5000 + "]"}, "charges"),
    ({"charges": "[" * 100_000 + "]" * 100_000}, "charges"),
    ({"charges": "[" * 500 + "]" * 500}, "charges"),
])
def test_each_wrong_field_gets_its_message(change: dict[str, str], field: str) -> None:
    values = {**blank(), "code": "team", "name": "Team", "flat_amount": "1", **change}
    body, errors = parse(submitted(posted(values)))
    assert body is None and list(errors) == [field], errors


@pytest.mark.parametrize("limit", ["1e999999", "\u00b2", "9" * 5000, "-5", "0"])
def test_a_limit_in_anything_but_plain_digits_is_refused(limit: str) -> None:
    values = {**blank(), "code": "team", "name": "Team", "flat_amount": "1"}
    values["limits"][0] = {"meter": "computations", "limit": limit, "hard": True}
    body, errors = parse(submitted(posted(values)))
    assert body is None and list(errors) == ["limits"], errors


def test_a_wrong_currency_does_not_also_blame_the_amount() -> None:
    values = {**blank(), "code": "team", "name": "Team", "flat_amount": "1", "currency": "Q"}
    assert list(parse(submitted(posted(values)))[1]) == ["currency"]


def test_the_apis_refusals_land_on_their_fields() -> None:
    assert errors_from_problem([{"loc": ["body", "price_plan", "charges"], "msg": "twice"}],
                               "not valid") == {"charges": "twice"}
    assert errors_from_problem([], "refused") == {"charges": "refused"}
