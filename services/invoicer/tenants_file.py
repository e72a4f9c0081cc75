"""Read a tenants file (a JSON object keyed by tenant id, each entry a tenant's billing settings,
price plan, coupon and credits: docs/configuration.md) into configuration commands.

Amounts there are MAJOR-unit strings (flat_rate_amount, coupon amount_off, credit amounts) and
become minor units with `contracts.money.to_minor_units`.

Every reading is a new submission: each command gets a fresh event id (UUID4), so applying a file
again, or an earlier file after a later one, makes a new configuration version
(docs/configuration.md, "Submissions and versions"). Credit ids stay deterministic, so a credit
keeps its id, hence its remaining balance, across configuration versions.
"""

import hashlib
import json
from pathlib import Path
from typing import Any

from contracts import Actor, BillingConfigSubmitted
from contracts.base import new_event_id
from contracts.money import to_minor_units


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def credit_id(tenant_id: str, credit: dict[str, Any]) -> str:
    """A credit's stable id from its tenant, grant time, amount and reason."""
    return f"credit-{tenant_id}-" + _digest(
        credit.get("granted_at"), credit.get("amount"), credit.get("reason")
    )[:12]


def command_for(tenant: dict[str, Any], actor: Actor) -> BillingConfigSubmitted:
    """A new `BillingConfigSubmitted` (fresh event id, submitted now) for one tenant entry;
    raises pydantic's `ValidationError` or `ValueError` (amount with too many digits) for a bad
    entry."""
    settings = dict(tenant["billing_config"])
    currency = settings["currency"]
    settings["flat_rate_amount"] = to_minor_units(settings["flat_rate_amount"], currency)
    coupon = tenant.get("coupon")
    if coupon:
        coupon = {**coupon, "amount_off": to_minor_units(coupon["amount_off"], currency)}
    credits = [
        {**c, "credit_id": c.get("credit_id") or credit_id(tenant["tenant_id"], c),
         "amount": to_minor_units(c["amount"], currency)}
        for c in tenant.get("credits") or []
    ]
    body = {
        "tenant_id": tenant["tenant_id"],
        "tenant_name": tenant.get("name"),
        "actor": actor.model_dump(),
        "settings": settings,
        "timezone": tenant.get("timezone", "UTC"),
        "effective_from": tenant["effective_from"],
        "price_plan": tenant.get("price_plan") or {},
        "coupon": coupon,
        "credits": credits,
    }
    body["event_id"] = new_event_id()
    return BillingConfigSubmitted.model_validate(body)


def read_tenants_file(path: Path, actor: Actor) -> list[BillingConfigSubmitted]:
    """One command per tenant in the file, submitted by `actor`."""
    data = json.loads(path.read_text())
    return [command_for(t, actor) for t in data["tenants"]]
