"""The demo's plan catalog: three monthly USD plans, written to `OUT/plans.json` and applied
the way `billing plans apply OUT/plans.json` applies a file (docs/plans.md, "Plans").

- `starter`: $9.00 a month, up to 1,000 computations per period, a HARD limit (the entitlement
  check refuses computations once the period has used 1,000);
- `team`: $49.00 a month, 10,000 computations (soft: beyond them each costs $0.01) and an
  average of 500 GB of storage (soft: $0.05 per GB beyond it);
- `business`: $199.00 a month, 100,000 computations (soft) and no storage limit.

Amounts are minor units (cents), quantities decimal strings, as in the `Plan` contract.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.invoicer import api as invoicer

PLANS_FILE = "plans.json"
#: The operator who applies the catalog (a `super`, as plan submissions require).
ACTOR = {"user_id": "demo-operator", "role": "super"}

CATALOG: list[dict[str, Any]] = [
    {
        "code": "starter",
        "name": "Starter",
        "description": "For trying the platform: up to 1,000 computations a month, then "
                       "new computations are refused until the next period.",
        "currency": "USD",
        "billing_frequency": "monthly",
        "flat_amount": 900,
        "price_plan": {"charges": []},
        "limits": [{"meter": "computations", "limit": "1000", "hard": True}],
    },
    {
        "code": "team",
        "name": "Team",
        "description": "For a team's projects: 10,000 computations and 500 GB of storage a "
                       "month included; usage beyond them is billed as overage.",
        "currency": "USD",
        "billing_frequency": "monthly",
        "flat_amount": 4900,
        "price_plan": {"charges": [
            {"meter": "computations", "model": "per_unit", "unit_price": "0.01",
             "included_quantity": "10000"},
            {"meter": "storage_gb", "model": "per_unit", "unit_price": "0.05",
             "included_quantity": "500"},
        ]},
        "limits": [{"meter": "computations", "limit": "10000", "hard": False},
                   {"meter": "storage_gb", "limit": "500", "hard": False}],
    },
    {
        "code": "business",
        "name": "Business",
        "description": "For production workloads: 100,000 computations a month included, "
                       "overage billed per computation.",
        "currency": "USD",
        "billing_frequency": "monthly",
        "flat_amount": 19900,
        "price_plan": {"charges": [
            {"meter": "computations", "model": "per_unit", "unit_price": "0.005",
             "included_quantity": "100000"},
        ]},
        "limits": [{"meter": "computations", "limit": "100000", "hard": False}],
    },
]


def write_plans(out: Path) -> Path:
    """Write `CATALOG` to `out/plans.json` (the `billing plans apply` file format); returns
    the path."""
    path = out / PLANS_FILE
    path.write_text(json.dumps({"plans": CATALOG}, indent=2) + "\n")
    return path


async def apply_catalog(out: Path, say: Callable[[str], None]) -> list[dict[str, Any]]:
    """Write the catalog to `out/plans.json` and apply it as `billing plans apply` does
    (signed `PlanSubmitted` commands, waiting until the invoicer stored each version). Returns
    `[{code, outcome, version}]`. Raises `ValueError` for an invalid file, `PlansRefused` or
    `TimeoutError` as `invoicer.apply_plans`."""
    path = write_plans(out)
    plans = invoicer.read_plans_file(path)
    outcomes = await invoicer.apply_plans(invoicer.InvoicerSettings(), plans,
                                          actor_id=ACTOR["user_id"], role=ACTOR["role"])
    say(f"plan catalog applied from {path}: "
        + "; ".join(outcome.describe() for outcome in outcomes))
    return [{"code": o.code, "outcome": o.outcome, "version": o.version} for o in outcomes]
