"""The admin console's plan form (docs/plans.md, "Plans"): its values pre-filled from a plan
version, and the submitted form checked field by field into the API's `PlanBody`.

The flat amount is typed in major units ("29.00") and converted exactly with the currency's
ISO 4217 exponent (`contracts.money.to_minor_units`: more digits than the currency has are
refused, never rounded). Limits are rows of meter, limit and a hard checkbox (a row without a
meter is ignored); the usage charges are the price plan's `charges` list as JSON.
"""

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from contracts import Plan
from contracts.config import PriceCharge
from contracts.money import check_currency, to_major_units, to_minor_units
from services.api.routes.plans import PlanBody

TEXT_FIELDS = ("code", "name", "description", "currency", "billing_frequency", "flat_amount",
               "charges")
FREQUENCIES = ("monthly", "quarterly", "annually")
#: Empty limit rows the form always offers after the plan's own.
EMPTY_LIMIT_ROWS = 3
FieldErrors = dict[str, str]
#: A flat amount or a limit as the form takes it: ASCII digits, at most 12 before the point
#: and 12 after (no sign, exponent or other scripts' digits, which `Decimal` would accept).
NUMBER = re.compile(r"[0-9]{1,12}(\.[0-9]{1,12})?")
#: The longest charges JSON the form reads, in characters.
MAX_CHARGES_TEXT = 20_000


def limit_row(meter: str = "", limit: str = "", hard: bool = False) -> dict[str, Any]:
    """One row of the limits table."""
    return {"meter": meter, "limit": limit, "hard": hard}


def blank() -> dict[str, Any]:
    """The values of the form for a new plan."""
    return {"code": "", "name": "", "description": "", "currency": "USD",
            "billing_frequency": "monthly", "flat_amount": "", "charges": "[]",
            "limits": [limit_row() for _ in range(EMPTY_LIMIT_ROWS)]}


def prefill(plan: Plan) -> dict[str, Any]:
    """The form's values for `plan` (flat amount in major units, charges as JSON), with the
    empty limit rows after its limits."""
    charges = [c.model_dump(mode="json", exclude_defaults=True) for c in plan.price_plan.charges]
    return {"code": plan.code, "name": plan.name, "description": plan.description,
            "currency": plan.currency, "billing_frequency": plan.billing_frequency,
            "flat_amount": str(to_major_units(plan.flat_amount, plan.currency)),
            "charges": json.dumps(charges, indent=2),
            "limits": [limit_row(lim.meter, str(lim.limit), lim.hard) for lim in plan.limits]
            + [limit_row() for _ in range(EMPTY_LIMIT_ROWS)]}


def submitted(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values as typed (text stripped), with every posted limit row (rows are
    numbered from 0 by `limit_meter_N`, `limit_value_N`, `limit_hard_N`)."""
    def text(name: str) -> str:
        raw = form.get(name)
        return raw.strip() if isinstance(raw, str) else ""

    values: dict[str, Any] = {name: text(name) for name in TEXT_FIELDS}
    rows, index = [], 0
    while f"limit_meter_{index}" in form:
        rows.append(limit_row(text(f"limit_meter_{index}"), text(f"limit_value_{index}"),
                              form.get(f"limit_hard_{index}") is not None))
        index += 1
    filled = [r for r in rows if r["meter"] or r["limit"]]
    values["limits"] = filled + [limit_row() for _ in range(EMPTY_LIMIT_ROWS)]
    return values


def _flat(text: str, currency: str | None, errors: FieldErrors) -> int | None:
    if not NUMBER.fullmatch(text):
        errors["flat_amount"] = ("Enter an amount of zero or more in digits, such as 29.00 "
                                 "(at most 12 digits before the point).")
        return None
    amount = Decimal(text)
    if currency is None:
        return None
    try:
        return to_minor_units(amount, currency)
    except ValueError:
        errors["flat_amount"] = f"{currency} amounts have fewer decimal places."
        return None


def _charges(text: str, errors: FieldErrors) -> list[Any] | None:
    if len(text) > MAX_CHARGES_TEXT:
        errors["charges"] = f"The charges are longer than {MAX_CHARGES_TEXT:,} characters."
        return None
    try:
        charges = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        errors["charges"] = f"The charges are not valid JSON ({exc.msg}, line {exc.lineno})."
        return None
    except (ValueError, RecursionError):  # a number of over 4,300 digits, too deep a nesting
        errors["charges"] = "The charges are not JSON this form can read."
        return None
    if not isinstance(charges, list):
        errors["charges"] = "Enter a JSON list of charges, such as []."
        return None
    problems = []
    for index, charge in enumerate(charges):
        try:
            PriceCharge.model_validate(charge)
        except ValidationError as exc:
            problems += [f"{index}.{_describe(e)}" for e in exc.errors()]
    if problems:
        errors["charges"] = "; ".join(problems)
        return None
    return charges


def _limits(rows: Sequence[Mapping[str, Any]], errors: FieldErrors) -> list[dict[str, Any]]:
    limits = []
    for row in rows:
        if not row["meter"] and not row["limit"]:
            continue
        value = Decimal(row["limit"]) if NUMBER.fullmatch(row["limit"]) else Decimal(0)
        if not row["meter"] or value <= 0:
            errors["limits"] = "Each limit needs a meter and a number greater than zero."
            continue
        limits.append({"meter": row["meter"], "limit": value, "hard": row["hard"]})
    return limits


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def parse(values: Mapping[str, Any]) -> tuple[PlanBody | None, FieldErrors]:
    """The request body for `values` (from `submitted`), or None with a message per field."""
    errors: FieldErrors = {}
    try:
        currency: str | None = check_currency(values["currency"].upper())
    except ValueError:
        errors["currency"] = "Enter an ISO 4217 currency code such as USD."
        currency = None
    flat = _flat(values["flat_amount"], currency, errors)
    if values["billing_frequency"] not in FREQUENCIES:
        errors["billing_frequency"] = "Choose monthly, quarterly or annually."
    charges = _charges(values["charges"], errors)
    limits = _limits(values["limits"], errors)
    body: dict[str, Any] = {
        "code": values["code"], "name": values["name"], "description": values["description"],
        "currency": currency, "billing_frequency": values["billing_frequency"],
        "flat_amount": flat, "price_plan": {"charges": charges or []}, "limits": limits}
    try:
        plan = PlanBody.model_validate(body)
    except ValidationError as exc:
        for problem in exc.errors():
            name = _field_of([str(p) for p in problem["loc"]])
            if name == "flat_amount" and flat is None and "currency" in errors:
                continue  # no amount can be read without its currency
            errors.setdefault(name, str(problem["msg"]))
    return (None, errors) if errors else (plan, {})


def _field_of(loc: list[str]) -> str:
    if loc and loc[0] in TEXT_FIELDS:
        return loc[0]
    if loc[:1] == ["price_plan"]:
        return "charges"
    return "limits"  # the limits list, or the plan as a whole (one limit per meter)


def errors_from_problem(problems: Sequence[Mapping[str, Any]], detail: str) -> FieldErrors:
    """Field messages for the API's 422 `errors` (`loc` `["body", field, ...]`)."""
    errors: FieldErrors = {}
    for problem in problems:
        loc = [str(p) for p in problem.get("loc", [])]
        errors.setdefault(_field_of(loc[1:] if loc[:1] == ["body"] else loc),
                          str(problem.get("msg", detail)))
    return errors or {"charges": detail}
