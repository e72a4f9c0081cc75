"""A completed Checkout Session in setup mode makes its card the tenant's default
(docs/payments.md, "Paying from the portal"); a subscription's session also starts the
subscription (`subscription_checkout.completed`).

Like PaymentIntent events, the event is not taken at its word: the session and its SetupIntent
are re-read from Stripe, and the session's customer must be the one recorded for the tenant
its metadata names. Idempotent per Stripe event id (the tracking record is written last;
applying the same card twice changes nothing).
"""

import logging
from datetime import datetime
from typing import Any

from contracts.base import utc_now
from services.payments import subscription_checkout
from services.payments.adapters.stripe_checkout import CheckoutSession
from services.payments.charging import Deps

log = logging.getLogger(__name__)
CHECKOUT_COMPLETED = "checkout.session.completed"
CHECKOUT_EXPIRED = "checkout.session.expired"


async def setup_completed(session: CheckoutSession, deps: Deps,
                          tracking: dict[str, Any], at: datetime | None = None) -> str:
    """Apply a re-read setup-mode session: `default_method` (the card is now the default at
    Stripe and in the store), `subscription_checkout` (that, and the subscription's
    `SubscriptionCheckoutCompleted` is in the outbox), `duplicate` (that event was written
    before), `mismatch` (its customer is not the tenant's) or `ignore` (not a completed setup
    of ours). `at`: when Stripe completed it (default now). Raises `DependencyUnavailable`
    while Stripe cannot be read (nothing marked processed)."""
    tenant_id = session.metadata.get("tenant_id")
    if session.mode != "setup" or session.status != "complete" or not session.setup_intent_id \
            or not tenant_id:
        await deps.store.commit(**tracking)
        return "ignore"
    known = await deps.store.customer(tenant_id)
    if not known or not session.customer_id or known.get("customer_id") != session.customer_id:
        log.warning("setup session %s names tenant %s but customer %s", session.session_id,
                    tenant_id, session.customer_id)
        await deps.store.commit(**tracking)
        return "mismatch"
    setup = await deps.gateway.setup_intent(session.setup_intent_id)
    if setup.status != "succeeded" or not setup.payment_method_id \
            or setup.customer_id != session.customer_id:
        await deps.store.commit(**tracking)
        return "ignore"
    if subscription_checkout.is_subscription(session):
        return await subscription_checkout.completed(session, setup, known, deps, tracking,
                                                     at or utc_now())
    description = await deps.gateway.make_default(session.customer_id, setup.payment_method_id)
    await deps.store.save_customer(tenant_id, session.customer_id, setup.payment_method_id,
                                   description)
    await deps.store.commit(**tracking)
    return "default_method"
