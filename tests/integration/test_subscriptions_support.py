"""Helpers the subscription tests share (no tests here): catalog plans written through the
plan store, subscription commands, and the invoicer's outbox read back."""

import json
from datetime import datetime
from typing import Any

import pytest

from contracts import (
    Plan,
    PlanSubmitted,
    SubscriptionCheckoutCompleted,
    SubscriptionRequested,
)
from contracts.config import Actor
from services.invoicer.adapters.plans import add_plan_version
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.names import OUTBOX
from services.invoicer.subscription_handlers import (
    apply_checkout_completed,
    apply_subscription,
)
from tests.integration.test_invoicer_support import utc

pytestmark = pytest.mark.integration
TENANT = Actor(user_id="owner@acme.example", role="tenant")


def plan(code: str, amount: int, unit_price: str, **fields: Any) -> Plan:
    """A monthly USD plan: `amount` minor units flat, cpu_hours at `unit_price`, a hard limit of
    100 cpu_hours unless `limits` says otherwise."""
    body: dict[str, Any] = {
        "code": code, "name": code.title(), "currency": "USD", "billing_frequency": "monthly",
        "flat_amount": amount,
        "price_plan": {"charges": [{"meter": "cpu_hours", "model": "per_unit",
                                    "unit_price": unit_price}]},
        "limits": [{"meter": "cpu_hours", "limit": "100", "hard": True}], **fields}
    return Plan.model_validate(body)


STARTER = plan("starter", 1000, "0.20", limits=[{"meter": "cpu_hours", "limit": "100"}])
PRO = plan("pro", 3000, "0.10", limits=[{"meter": "cpu_hours", "limit": "1000",
                                         "hard": True}])


async def add_plans(store: InvoicerStore, *plans: Plan) -> None:
    """Each plan as the next version of its code in the catalog."""
    for p in plans:
        command = PlanSubmitted(plan=p, actor=Actor(user_id="admin", role="super"))

        async def txn(session: Any, command: PlanSubmitted = command) -> int:
            return await add_plan_version(store.db, command, session)

        await store.transaction(txn)


def request(action: str, at: datetime, plan_code: str | None = None, tenant: str = "acme",
            **fields: Any) -> SubscriptionRequested:
    """A subscription command of `tenant`'s owner, occurring at `at`."""
    body: dict[str, Any] = {"tenant_id": tenant, "action": action, "plan_code": plan_code,
                            "occurred_at": at.isoformat(), "actor": TENANT.model_dump()}
    if action == "start":
        body.setdefault("billing_email", f"billing@{tenant}.example")
    return SubscriptionRequested.model_validate({**body, **fields})


async def subscribe(store: InvoicerStore, action: str, at: datetime,
                    plan_code: str | None = None, **fields: Any) -> str | None:
    """Apply one subscription command directly (no broker)."""
    return await apply_subscription(store, request(action, at, plan_code, **fields))


def completed(at: datetime, plan_code: str, tenant: str = "acme") -> SubscriptionCheckoutCompleted:
    """The payments service's fact for Checkout Session `cs_{tenant}` completing at `at`."""
    return SubscriptionCheckoutCompleted(
        event_id=f"checkout-completed:cs_{tenant}", tenant_id=tenant,
        checkout_session_id=f"cs_{tenant}", plan_code=plan_code,
        billing_email=f"billing@{tenant}.example", completed_at=at)


async def start_on_starter(store: InvoicerStore, *plans: Plan) -> None:
    """Catalog `plans` (each as its next version), then start tenant acme on Starter at
    1 April 2026 08:00 UTC."""
    await add_plans(store, *plans)
    await subscribe(store, "start", utc(2026, 4, 1, 8), "starter")


async def complete_checkout(store: InvoicerStore, at: datetime, plan_code: str) -> str | None:
    """Apply `completed(at, plan_code)`."""
    return await apply_checkout_completed(store, completed(at, plan_code))


async def outbox(store: InvoicerStore, kind: str) -> list[dict[str, Any]]:
    """The payloads (JSON data) of the invoicer's outbox entries of event type `kind`, in
    order."""
    docs = await store.db[OUTBOX].find({"type": kind}).sort("seq", 1).to_list()
    return [json.loads(d["payload"]) for d in docs]


def windows(event: dict[str, Any]) -> list[tuple[str, str, list[tuple[str, str, bool]]]]:
    """A `UsageLimitsChanged` payload's windows as (start, end, [(meter, limit, hard)])."""
    return [(w["period_start"], w["period_end"],
             [(li["meter"], li["limit"], li["hard"]) for li in w["limits"]])
            for w in event["windows"]]


def lines(doc: dict[str, Any]) -> list[tuple[str, str, int]]:
    """An invoice's line items as (kind, description, amount in minor units)."""
    return [(li["kind"], li["description"], li["amount"]) for li in doc["line_items"]]


def span(doc: dict[str, Any]) -> tuple[datetime, datetime]:
    """An invoice's (period_start, period_end)."""
    return doc["period_start"], doc["period_end"]
