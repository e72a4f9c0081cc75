"""Helpers the subscription API and Plan page tests share (no tests here): plans written into
the catalog store, and an in-memory stand-in for the payments service's billing customer,
card, subscription checkout and billing portal operations (`FakePayments.install`), so the
API's own checks and the pages are tested without Stripe."""

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from contracts import Actor
from contracts.base import utc_now
from contracts.plans import Plan, PlanLimit, PlanSubmitted
from services.common.errors import PermanentError
from services.invoicer import api as invoicer
from services.invoicer.adapters.plans import add_plan_version
from services.payments import api as payments
from services.payments.api import BillingCustomerDetails


def plan(code: str, flat: int, currency: str = "USD", frequency: str = "monthly",
         limits: tuple[PlanLimit, ...] = ()) -> Plan:
    """A plan `code` named after it (`Starter` for `starter`) with flat amount `flat`."""
    return Plan.model_validate({
        "code": code, "name": code.title(), "description": f"The {code} plan.",
        "currency": currency, "billing_frequency": frequency, "flat_amount": flat,
        "limits": [lim.model_dump() for lim in limits]})


async def add_plans(client: Any, db: AsyncDatabase[dict[str, Any]], *plans: Plan) -> None:
    """Store each plan as its code's next version, as the invoicer's plan handler does."""
    async with client.start_session() as session:
        for p in plans:
            await add_plan_version(db, PlanSubmitted(
                event_id=str(uuid.uuid4()), occurred_at=utc_now(), plan=p,
                actor=Actor(user_id="test", role="super")), session)


@dataclass
class FakePayments:
    """Billing customers, cards and open subscription checkouts per tenant, in memory."""

    customers: dict[str, BillingCustomerDetails] = field(default_factory=dict)
    cards: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    checkouts: list[dict[str, Any]] = field(default_factory=list)
    portal_returns: list[str] = field(default_factory=list)
    subscriptions: dict[str, invoicer.SubscriptionView] = field(default_factory=dict)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakePayments":
        """Replace the payments service's operations the subscription routes call (and the
        invoicer's `subscription_of` by `subscriptions`)."""
        monkeypatch.setattr(invoicer, "subscription_of", self.subscription_of)
        monkeypatch.setattr(payments, "billing_customer", self.billing_customer)
        monkeypatch.setattr(payments, "save_billing_customer", self.save_billing_customer)
        monkeypatch.setattr(payments, "payment_method_on_file", self.payment_method_on_file)
        monkeypatch.setattr(payments, "subscription_checkout", self.subscription_checkout)
        monkeypatch.setattr(payments, "pending_subscription_checkout", self.pending_checkout)
        monkeypatch.setattr(payments, "billing_portal_url", self.billing_portal_url)
        return self

    async def subscription_of(self, db: Any, tenant_id: str) -> Any:
        return self.subscriptions.get(tenant_id)

    def subscribe(self, tenant_id: str, code: str, version: int = 1, *,
                  status: str = "active", **changes: Any) -> None:
        """Give `tenant_id` a subscription to `code` in the period June 2013."""
        june, july = datetime(2013, 6, 1, tzinfo=UTC), datetime(2013, 7, 1, tzinfo=UTC)
        self.subscriptions[tenant_id] = invoicer.SubscriptionView(**{
            "tenant_id": tenant_id, "status": status, "plan_code": code,
            "plan_version": version, "plan_name": code.title(), "started_at": june,
            "current_period_start": june, "current_period_end": july,
            "cancel_at_period_end": False, "scheduled_plan_code": None,
            "scheduled_at": None, **changes})

    async def billing_customer(self, settings: Any, tenant_id: str,
                               deps: Any = None) -> BillingCustomerDetails | None:
        return self.customers.get(tenant_id)

    async def save_billing_customer(self, settings: Any, tenant_id: str,
                                    details: BillingCustomerDetails, deps: Any = None) -> str:
        self.customers[tenant_id] = details
        return f"cus_{tenant_id}"

    async def payment_method_on_file(self, settings: Any, tenant_id: str,
                                     deps: Any = None) -> tuple[str, str, str] | None:
        return self.cards.get(tenant_id)

    async def subscription_checkout(self, settings: Any, tenant_id: str, plan_code: str,
                                    plan_version: int | None, success_url: str,
                                    cancel_url: str, deps: Any = None) -> str:
        if tenant_id not in self.customers:
            raise PermanentError("no_billing_customer", "no billing customer")
        self.checkouts.append({"tenant_id": tenant_id, "plan_code": plan_code,
                               "plan_version": plan_version, "success_url": success_url,
                               "cancel_url": cancel_url})
        self.pending[tenant_id] = plan_code
        return f"https://checkout.stripe.test/c/pay/cs_test_{len(self.checkouts)}"

    async def pending_checkout(self, settings: Any, tenant_id: str,
                               deps: Any = None) -> str | None:
        return self.pending.get(tenant_id)

    async def billing_portal_url(self, settings: Any, tenant_id: str, return_url: str,
                                 deps: Any = None) -> str:
        if tenant_id not in self.customers:
            raise PermanentError("no_billing_customer", "the tenant has no billing customer")
        self.portal_returns.append(return_url)
        return "https://billing.stripe.test/p/session/bps_test_1"
