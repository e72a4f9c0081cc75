"""The payments service's one public module, for the CLI, the demo and other services.

Names: `SERVICE`, `WEBHOOKS_SERVICE` (the workers of `billing run`), `CONSUMES` ((contract
topic, consumer group) per subscription of the payments worker), `OUTBOXES` (its outbox
collections) and `PaymentsSettings`. Operations, each opening and closing its own
connections unless given `deps` (`connected`: a long-lived process such as the Billing API
opens them once): events they cause go through the payments outbox; `publish=True` relays it
once right away (the running worker's relay would also publish them; consumers dedupe by id).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime

from services.common.errors import PermanentError
from services.common.kafka import ensure_topics
from services.common.mongo import database, make_client
from services.common.relay import outbox_relay
from services.common.worker import make_broker
from services.payments import customers, handlers, paying
from services.payments import subscription_checkout as subscribing
from services.payments.bootstrap import connected_deps, open_deps, open_store
from services.payments.charging import Deps
from services.payments.customers import BillingCustomerDetails
from services.payments.domain import InvoiceRecord
from services.payments.names import CONSUMES, OUTBOX, OUTBOXES, SERVICE, WEBHOOKS_SERVICE
from services.payments.paying import PayMethod, PayNowOutcome
from services.payments.settings import PaymentsSettings

#: The payments service's open connections (store and Stripe gateway), from `connected`.
PaymentsDeps = Deps
#: `async with connected(settings, client) as deps`: the connections on the caller's client.
connected = connected_deps

__all__ = ["CONSUMES", "OUTBOXES", "SERVICE", "WEBHOOKS_SERVICE", "BillingCustomerDetails",
           "PayMethod", "PayNowOutcome", "PaymentsDeps", "PaymentsSettings",
           "billing_customer", "billing_portal_url", "connected", "ensure_indexes",
           "next_dunning_after", "pay_now", "payment_method_on_file",
           "pending_subscription_checkout", "record_manual_payment",
           "register_webhook_endpoint", "relay_outbox", "run_dunning",
           "save_billing_customer", "setup_checkout", "setup_payment_method",
           "setup_payment_method_described", "subscription_checkout"]


@asynccontextmanager
async def _using(settings: PaymentsSettings, deps: Deps | None) -> AsyncIterator[Deps]:
    """`deps` when given, else connections opened (indexes ensured) and closed for the call."""
    if deps is not None:
        yield deps
        return
    async with open_deps(settings) as opened:
        yield opened


async def ensure_indexes(deps: Deps) -> None:
    """Create the payments store's indexes (idempotent) for `deps` from `connected`."""
    await deps.store.ensure_indexes()


async def relay_outbox(settings: PaymentsSettings) -> int:
    """Publish every pending payments-outbox entry to Kafka now; returns how many."""
    await ensure_topics(settings)
    client = make_client(settings)
    broker = make_broker(settings, name=f"{SERVICE}-cli")
    try:
        await broker.start()

        relay = outbox_relay(broker, settings, database(client, settings), OUTBOX, SERVICE)
        return await relay.drain()
    finally:
        await broker.stop()
        await client.close()


async def setup_payment_method(settings: PaymentsSettings, tenant_id: str,
                               payment_method: str) -> None:
    """Attach `payment_method` (`pm_...` or a test token such as `pm_card_visa`) as the
    tenant's default, creating its Stripe customer if needed. Raises `PermanentError`
    (`stripe_rejected`) or `DependencyUnavailable`."""
    await setup_payment_method_described(settings, tenant_id, payment_method)


async def setup_payment_method_described(settings: PaymentsSettings, tenant_id: str,
                                         payment_method: str) -> str:
    """Like `setup_payment_method`; returns the description (`card visa 4242`)."""
    async with open_deps(settings) as deps:
        return await handlers.setup_method(tenant_id, payment_method, deps)


async def register_webhook_endpoint(settings: PaymentsSettings, url: str) -> str:
    """Register `url` (the ingress, e.g. http://127.0.0.1:8470/stripe/webhook) with Stripe
    for every event type; returns the endpoint id (`we_...`)."""
    async with open_deps(settings) as deps:
        return await deps.gateway.register_webhook(url)


async def run_dunning(settings: PaymentsSettings, as_of: datetime, publish: bool = True) -> int:
    """Run the retries due at `as_of` (tz-aware); returns the number of attempts made."""
    async with open_deps(settings) as deps:
        made = await handlers.run_due_retries(as_of, deps)
    if publish and made:
        await relay_outbox(settings)
    return made


async def next_dunning_after(settings: PaymentsSettings, after: datetime) -> datetime | None:
    """The earliest scheduled retry strictly later than `after`, or None."""
    async with open_store(settings) as store:
        return await store.next_retry_after(after)


async def record_manual_payment(settings: PaymentsSettings, invoice_number: str, method: str,
                                reference: str, paid_on: date | None = None,
                                publish: bool = True, deps: Deps | None = None) -> InvoiceRecord:
    """Record a payment made outside Stripe as `PaymentSucceeded`; raises `PermanentError`
    (`unknown_invoice`, `already_paid`, `invalid_method`)."""
    async with _using(settings, deps) as using:
        record = await handlers.record_manual(invoice_number, method, reference, paid_on,
                                              using)
    if publish:
        await relay_outbox(settings)
    return record


async def pay_now(settings: PaymentsSettings, invoice_number: str, *, tenant_id: str | None,
                  success_url: str, cancel_url: str, method: PayMethod = "auto",
                  publish: bool = False, deps: Deps | None = None) -> PayNowOutcome:
    """The portal's Pay now (docs/payments.md, "Paying from the portal"): charge the card on
    file as the invoice's next attempt (`paid`, `failed`, or `processing` while another charge
    holds the invoice's lease), or return a Stripe Checkout URL (`checkout`; the webhook
    settles the invoice). `tenant_id` given: another tenant's invoice is unknown. The outcome
    goes through the outbox (the running worker publishes it; `publish=True` relays now).
    Raises `PermanentError` (`unknown_invoice`, `already_paid`, `no_payment_method`,
    `stripe_rejected`) or `DependencyUnavailable`."""
    async with _using(settings, deps) as using:
        outcome = await paying.pay_now(using, invoice_number, tenant_id=tenant_id,
                                       success_url=success_url, cancel_url=cancel_url,
                                       method=method)
    if publish and outcome.outcome in ("paid", "failed"):
        await relay_outbox(settings)
    return outcome


async def setup_checkout(settings: PaymentsSettings, tenant_id: str, success_url: str,
                         cancel_url: str, deps: Deps | None = None) -> str:
    """The URL of Stripe's hosted page (a Checkout Session in setup mode) where the tenant
    enters a card; it becomes the default when Stripe's webhook confirms it. Raises
    `PermanentError` (`stripe_rejected`) or `DependencyUnavailable`."""
    async with _using(settings, deps) as using:
        return await paying.setup_checkout(using, tenant_id, success_url, cancel_url)


async def payment_method_on_file(settings: PaymentsSettings, tenant_id: str,
                                 deps: Deps | None = None) -> tuple[str, str, str] | None:
    """The tenant's default card as (brand, last4, description), e.g. `("visa", "4242",
    "card visa 4242")`; None when it has none. Reads the payments store only."""
    if deps is not None:
        return paying.card_on_file(await deps.store.customer(tenant_id))
    async with open_store(settings) as store:
        return paying.card_on_file(await store.customer(tenant_id))


async def save_billing_customer(settings: PaymentsSettings, tenant_id: str,
                                details: BillingCustomerDetails, deps: Deps | None = None) -> str:
    """Create or update the tenant's billing customer (docs/plans.md, "Billing customer and
    checkout"): the Stripe customer (name, email, address, `metadata[tenant_id]`, tax id) and
    the payments store's copy; returns the Stripe customer id (`cus_...`). Idempotent: a
    retried save never creates a second Stripe customer. Raises `PermanentError`
    (`stripe_rejected`) or `DependencyUnavailable`."""
    async with _using(settings, deps) as using:
        return await customers.save(using, tenant_id, details)


async def billing_customer(settings: PaymentsSettings, tenant_id: str,
                           deps: Deps | None = None) -> BillingCustomerDetails | None:
    """The tenant's billing customer as last saved, or None. Reads the payments store only."""
    if deps is not None:
        return customers.from_customer(await deps.store.customer(tenant_id))
    async with open_store(settings) as store:
        return customers.from_customer(await store.customer(tenant_id))


async def subscription_checkout(settings: PaymentsSettings, tenant_id: str, plan_code: str,
                                plan_version: int | None, success_url: str, cancel_url: str,
                                deps: Deps | None = None) -> str:
    """The URL of a Stripe Checkout Session in setup mode where the tenant enters the card
    for a subscription to `plan_code` (version `plan_version`); the subscription starts when
    Stripe's signed `checkout.session.completed` is reconciled (`SubscriptionCheckoutCompleted`
    on billing.payment.v1). Raises `PermanentError` (`no_billing_customer`,
    `stripe_rejected`) or `DependencyUnavailable`."""
    async with _using(settings, deps) as using:
        return await subscribing.open_checkout(using, tenant_id, plan_code, plan_version,
                                               success_url, cancel_url)


async def pending_subscription_checkout(settings: PaymentsSettings, tenant_id: str,
                                        deps: Deps | None = None) -> str | None:
    """The plan code of the tenant's subscription checkout opened in the last 24 h (Stripe
    Checkout Sessions expire after 24 h) that is not completed, confirmed or expired yet;
    None otherwise. Reads the payments store only."""
    if deps is not None:
        return await subscribing.pending(deps.store, tenant_id)
    async with open_store(settings) as store:
        return await subscribing.pending(store, tenant_id)


async def billing_portal_url(settings: PaymentsSettings, tenant_id: str, return_url: str,
                             deps: Deps | None = None) -> str:
    """The URL of a Stripe billing portal session where the tenant changes its default card;
    Stripe returns the browser to `return_url`. Raises `PermanentError`
    (`no_billing_customer`, `stripe_rejected`) or `DependencyUnavailable`."""
    async with _using(settings, deps) as using:
        known = await using.store.customer(tenant_id)
        if not known or not known.get("customer_id"):
            raise PermanentError("no_billing_customer",
                                 f"tenant {tenant_id} has no billing customer yet")
        return await using.gateway.portal_session(str(known["customer_id"]), return_url)
