"""Subscribing without a card on file, and changing the card in Stripe's billing portal
(docs/plans.md, "Billing customer and checkout").

- `open_checkout`: a Checkout Session in setup mode for the tenant's billing customer, with
  metadata `purpose=subscription`, `tenant_id`, `plan_code`, `plan_version`, recorded as an
  open subscription checkout (Stripe expires it after 24 h unless completed). The tenant's
  earlier open subscription sessions are expired first, so two pages left open cannot both
  start a subscription.
- `completed`: Stripe's signed `checkout.session.completed` of such a session, the session and
  its SetupIntent re-read from Stripe: the card becomes the default at Stripe, then ONE
  transaction stores it, closes the checkout and writes `SubscriptionCheckoutCompleted`
  (event id from the session id) to the outbox. A second completion of the session (a
  redelivery under another event id, a re-sent event) finds that id in the outbox: only its
  tracking record is written, nothing is published twice.
- `expired`: `checkout.session.expired` closes the checkout; nothing is published.
- `customer_updated`: `customer.updated` (also sent when the billing portal changes the
  card) is re-read from Stripe; a new default card of a tenant's customer is stored. Every
  change of the default sends one, and each re-reads Stripe's current default, so events
  reconciled out of order still leave Stripe's latest card in the store.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from contracts import TOPIC_PAYMENT
from contracts.base import utc_now
from contracts.plans import SubscriptionCheckoutCompleted
from services.common.errors import PermanentError
from services.payments.adapters.store import (
    Customer,
    CustomerChange,
    PaymentsStore,
    SubscriptionCheckout,
)
from services.payments.adapters.stripe_checkout import CheckoutSession, SetupResult
from services.payments.charging import Deps
from services.payments.customers import from_customer

#: `metadata.purpose` of a subscription's Checkout Session
SUBSCRIPTION_PURPOSE = "subscription"
#: Stripe expires a Checkout Session 24 h after creation unless completed
CHECKOUT_LIFETIME = timedelta(hours=24)
_NAMESPACE = uuid.UUID("0b7c61de-4b0e-4c55-8a3f-3f4f2f0d9a61")


def completed_event_id(session_id: str) -> str:
    """The only id the `SubscriptionCheckoutCompleted` of Checkout Session `session_id` has."""
    return str(uuid.uuid5(_NAMESPACE, f"subscription-checkout:{session_id}"))


def _billing_customer(customer: Customer | None, tenant_id: str) -> str:
    if from_customer(customer) is None or not (customer or {}).get("customer_id"):
        raise PermanentError("no_billing_customer",
                             f"tenant {tenant_id} has no billing customer yet")
    return str((customer or {})["customer_id"])


async def open_checkout(deps: Deps, tenant_id: str, plan_code: str, plan_version: int | None,
                        success_url: str, cancel_url: str) -> str:
    """The hosted page URL of a new subscription checkout (see the module docstring).
    Raises `PermanentError` (`no_billing_customer`, `stripe_rejected`) or
    `DependencyUnavailable`."""
    customer_id = _billing_customer(await deps.store.customer(tenant_id), tenant_id)
    for earlier in await deps.gateway.open_checkouts(customer_id):
        if is_subscription(earlier):  # only the newest page can start a subscription
            await deps.gateway.expire_checkout(earlier.session_id)
    metadata = {"purpose": SUBSCRIPTION_PURPOSE, "tenant_id": tenant_id,
                "plan_code": plan_code}
    if plan_version is not None:
        metadata["plan_version"] = str(plan_version)
    opened = utc_now()
    session = await deps.gateway.create_checkout(
        customer_id=customer_id, mode="setup", success_url=success_url, cancel_url=cancel_url,
        metadata=metadata, idempotency_key=f"subscription-{tenant_id}-{uuid.uuid4().hex}")
    assert session.url is not None
    await deps.store.add_subscription_checkout(SubscriptionCheckout(
        session.session_id, tenant_id, plan_code, plan_version, opened,
        opened + CHECKOUT_LIFETIME))
    return session.url


async def pending(store: PaymentsStore, tenant_id: str) -> str | None:
    """The plan code of the tenant's open subscription checkout, None without one."""
    found = await store.open_subscription_checkout(tenant_id, utc_now())
    return found.plan_code if found is not None else None


def is_subscription(session: CheckoutSession) -> bool:
    """True for a setup-mode session opened by `open_checkout`."""
    return session.mode == "setup" and session.metadata.get("purpose") == SUBSCRIPTION_PURPOSE


async def completed(session: CheckoutSession, setup: SetupResult, customer: Customer,
                    deps: Deps, tracking: dict[str, Any], at: datetime) -> str:
    """Apply a completed subscription checkout whose SetupIntent succeeded for the tenant's
    customer (checked by the caller): `subscription_checkout`, or `duplicate` when its event
    is in the outbox already. `at`: when Stripe completed it (the event's `created`)."""
    tenant_id = session.metadata["tenant_id"]
    assert setup.payment_method_id is not None and session.customer_id is not None
    description = await deps.gateway.make_default(session.customer_id, setup.payment_method_id)
    details = from_customer(customer)
    version = session.metadata.get("plan_version", "")
    event = SubscriptionCheckoutCompleted(
        event_id=completed_event_id(session.session_id), occurred_at=at, tenant_id=tenant_id,
        checkout_session_id=session.session_id, plan_code=session.metadata["plan_code"],
        plan_version=int(version) if version.isdigit() else None,
        billing_email=details.email if details else None,
        tenant_name=details.name if details else None, completed_at=at)
    change = CustomerChange(tenant_id, {"payment_method_id": setup.payment_method_id,
                                        "payment_method": description})
    if await deps.store.commit(**tracking, outgoing=[(event, TOPIC_PAYMENT, tenant_id)],
                               customer=change,
                               checkout_status=(session.session_id, "complete")):
        return "subscription_checkout"
    await deps.store.commit(**tracking, customer=change)
    return "duplicate"


async def expired(obj: dict[str, Any], deps: Deps, tracking: dict[str, Any]) -> str:
    """`checkout.session.expired`: a subscription checkout, re-read and expired at Stripe, is
    closed (`checkout_expired`); anything else is ignored. Nothing is published."""
    known = await deps.store.subscription_checkout(str(obj.get("id") or ""))
    if known is None:
        await deps.store.commit(**tracking)
        return "ignore"
    session = await deps.gateway.checkout_session(known.session_id)
    if session.status != "expired":
        await deps.store.commit(**tracking)
        return "ignore"
    await deps.store.commit(**tracking, checkout_status=(known.session_id, "expired"))
    return "checkout_expired"


async def customer_updated(obj: dict[str, Any], deps: Deps, tracking: dict[str, Any]) -> str:
    """`customer.updated`: the customer re-read from Stripe; when it is the recorded customer
    of the tenant its metadata names and its default card differs from the stored one, the
    new card is stored (`default_method`); else `ignore`."""
    customer_id = str(obj.get("id") or "")
    tenant_id = str((obj.get("metadata") or {}).get("tenant_id") or "")
    known = await deps.store.customer(tenant_id) if tenant_id else None
    if not known or not customer_id or known.get("customer_id") != customer_id:
        await deps.store.commit(**tracking)
        return "ignore"
    default, metadata = await deps.gateway.default_method(customer_id)
    if not default or metadata.get("tenant_id") != tenant_id \
            or default == known.get("payment_method_id"):
        await deps.store.commit(**tracking)
        return "ignore"
    description = await deps.gateway.describe_method(default) or "card"
    await deps.store.commit(**tracking, customer=CustomerChange(
        tenant_id, {"payment_method_id": default, "payment_method": description}))
    return "default_method"
