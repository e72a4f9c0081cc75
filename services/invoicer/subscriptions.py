"""Subscriptions to catalog plans: the pure rules (docs/plans.md, "Subscriptions" and
"Proration"). No I/O here: the handlers in `subscription_handlers.py` read and write the
store and call these."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class SubscriptionView:
    """A tenant's subscription as the Billing API and the portal show it. `status` follows
    Stripe's subscription statuses (`active` until it ends, then `canceled`); the period
    bounds are UTC instants, [start, end); `scheduled_plan_code` and `scheduled_at` name a
    downgrade waiting for the period's end (None when there is none); `cancel_at_period_end`
    says the subscription ends at `current_period_end`."""

    tenant_id: str
    status: Literal["active", "canceled"]
    plan_code: str
    plan_version: int
    plan_name: str
    started_at: datetime
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    scheduled_plan_code: str | None
    scheduled_at: datetime | None
