"""The Billing tab's configuration form: its fields pre-filled from the version in force, and
the submitted form checked field by field into the API's `BillingConfigBody`
(docs/portal.md, "Admin console").

The form shows the flat rate in major units of the currency ("29.00"); it is converted to minor
units with the currency's ISO 4217 exponent (`contracts.money.to_minor_units`: a value with
more digits than the currency has is refused, never rounded). Checkboxes are on when present.
The effective date and the tenant's name are carried over from the version in force.
"""

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from contracts.config import PricePlan
from contracts.money import check_currency, to_major_units, to_minor_units
from services.api.models_reads import ConfigInForce
from services.api.models_writes import BillingConfigBody

#: The settings fields in form order (all but the price plan and the time zone).
SETTINGS_FIELDS = ("flat_rate_amount", "currency", "billing_frequency", "billing_email",
                   "auto_generate_invoices", "billing_day_of_month", "payment_due_days",
                   "email_notifications")
FIELDS = (*SETTINGS_FIELDS, "timezone", "price_plan")
FREQUENCIES = ("monthly", "quarterly", "annually")
CHECKBOXES = ("auto_generate_invoices", "email_notifications")

FieldErrors = dict[str, str]


def prefill(in_force: ConfigInForce) -> dict[str, Any]:
    """The form's values for the version in force (flat rate in major units, plan as JSON)."""
    s = in_force.settings
    plan = in_force.price_plan.model_dump(mode="json", exclude_defaults=True)
    return {
        "flat_rate_amount": str(to_major_units(s.flat_rate_amount, s.currency)),
        "currency": s.currency, "billing_frequency": s.billing_frequency,
        "billing_email": str(s.billing_email),
        "auto_generate_invoices": s.auto_generate_invoices,
        "billing_day_of_month": str(s.billing_day_of_month),
        "payment_due_days": str(s.payment_due_days),
        "email_notifications": s.email_notifications,
        "timezone": in_force.timezone, "price_plan": json.dumps(plan, indent=2),
    }


def submitted(form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values as typed (text stripped; checkboxes as booleans)."""
    values: dict[str, Any] = {}
    for name in FIELDS:
        raw = form.get(name)
        if name in CHECKBOXES:
            values[name] = raw is not None
        else:
            values[name] = raw.strip() if isinstance(raw, str) else ""
    return values


def _whole(text: str, low: int, high: int, errors: FieldErrors, name: str) -> int | None:
    try:
        value = int(text)
    except ValueError:
        errors[name] = "Enter a whole number."
        return None
    if not low <= value <= high:
        errors[name] = f"Enter a number from {low} to {high}."
        return None
    return value


def _flat_rate(text: str, currency: str | None, errors: FieldErrors) -> int | None:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        errors["flat_rate_amount"] = "Enter an amount such as 29.00."
        return None
    if not amount.is_finite() or amount < 0:
        errors["flat_rate_amount"] = "Enter an amount of zero or more."
        return None
    if currency is None:
        return None
    try:
        return to_minor_units(amount, currency)
    except ValueError:
        errors["flat_rate_amount"] = f"{currency} amounts have fewer decimal places."
        return None


def _currency(text: str, errors: FieldErrors) -> str | None:
    try:
        return check_currency(text.upper())
    except ValueError:
        errors["currency"] = "Enter an ISO 4217 currency code such as USD."
        return None


def _zone(text: str, errors: FieldErrors) -> None:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        errors["timezone"] = "Enter an IANA time zone such as Europe/Berlin."


def _plan(text: str, errors: FieldErrors) -> Any:
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as exc:
        errors["price_plan"] = f"The price plan is not valid JSON ({exc.msg}, line {exc.lineno})."
        return None
    try:
        PricePlan.model_validate(plan)
    except ValidationError as exc:
        errors["price_plan"] = "; ".join(_describe(e) for e in exc.errors())
        return None
    return plan


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def parse(values: Mapping[str, Any], in_force: ConfigInForce
          ) -> tuple[BillingConfigBody | None, FieldErrors]:
    """The request body for `values` (from `submitted`), or None with a message per field."""
    errors: FieldErrors = {}
    currency = _currency(values["currency"], errors)
    flat = _flat_rate(values["flat_rate_amount"], currency, errors)
    day = _whole(values["billing_day_of_month"], 1, 31, errors, "billing_day_of_month")
    due = _whole(values["payment_due_days"], 0, 365, errors, "payment_due_days")
    if values["billing_frequency"] not in FREQUENCIES:
        errors["billing_frequency"] = "Choose monthly, quarterly or annually."
    if not values["billing_email"]:
        errors["billing_email"] = "Enter the email address invoices are sent to."
    _zone(values["timezone"], errors)
    plan = _plan(values["price_plan"], errors)
    if errors:
        return None, errors
    try:
        body = BillingConfigBody.model_validate({
            "settings": {"flat_rate_amount": flat, "currency": currency,
                         "billing_frequency": values["billing_frequency"],
                         "billing_email": values["billing_email"],
                         "auto_generate_invoices": values["auto_generate_invoices"],
                         "billing_day_of_month": day, "payment_due_days": due,
                         "email_notifications": values["email_notifications"]},
            "timezone": values["timezone"], "effective_from": in_force.effective_from,
            "price_plan": plan})
    except ValidationError as exc:
        return None, errors_from_locs([{"loc": ["body", *e["loc"]], "msg": e["msg"]}
                                       for e in exc.errors()])
    return body, {}


def errors_from_locs(problems: Sequence[Mapping[str, Any]]) -> FieldErrors:
    """Field messages for the API's 422 `errors` (`loc` `["body", "settings", field]`,
    `["body", "timezone"]`, `["body", "price_plan", ...]`); anything else is the plan's."""
    errors: FieldErrors = {}
    for problem in problems:
        loc = [str(p) for p in problem.get("loc", [])]
        path = loc[1:] if loc[:1] == ["body"] else loc
        if path[:1] == ["settings"] and len(path) > 1 and path[1] in SETTINGS_FIELDS:
            name, rest = path[1], path[2:]
        elif path[:1] and path[0] in ("timezone", "price_plan"):
            name, rest = path[0], path[1:]
        else:
            name, rest = "price_plan", path
        message = str(problem.get("msg", "is not valid"))
        text = f"{'.'.join(rest)}: {message}" if rest else message
        errors[name] = f"{errors[name]}; {text}" if name in errors else text
    return errors


def errors_from_detail(detail: str) -> FieldErrors:
    """A field message for a refusal without `errors` (the invoicer's own rules): on the field
    its text names, else on the price plan."""
    lowered = detail.lower()
    for name in FIELDS:
        if name in lowered or name.replace("_", " ") in lowered:
            return {name: detail}
    return {"price_plan": detail}
