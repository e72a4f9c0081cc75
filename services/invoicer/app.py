"""The invoicer worker: consumes configuration commands, the operator's credit and coupon
commands, plan submissions, subscription commands and completed subscription checkouts
(dispatched by event type) and payment outcomes, relays its
outbox to `billing.invoice.v1`, and runs the billing cycle on the real clock every
`BILLING_INVOICER_CYCLE_INTERVAL_SECONDS` (0 = never).

Offsets are committed only after the effect is durable. Errors follow the platform's one
policy (`services.common.consumer`, docs/design.md#reliability): bad input and refused
commands are dead-lettered with their reason, an outage is retried in place, a bug
dead-letters its message (`internal_error`) so the partition moves on.
"""

import asyncio
import logging

from faststream.kafka import KafkaBroker

from contracts import (
    TOPIC_PAYMENT,
    TOPIC_TENANT_CONFIG,
    BillingConfigSubmitted,
    CouponCreated,
    CouponRedeemed,
    CreditGranted,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    PlanSubmitted,
    SubscriptionCheckoutCompleted,
    SubscriptionRequested,
)
from contracts.base import Contract, utc_now
from services.common.consumer import Handler, subscribe
from services.common.deadletter import MessageSource
from services.common.mongo import database, make_client
from services.common.periodic import Task, periodic_task
from services.common.relay import outbox_relay
from services.common.worker import make_broker, raw_publisher, serve_worker
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.handlers import apply_payment, apply_refund, apply_signed_config
from services.invoicer.names import CONSUMES, OUTBOX, SERVICE
from services.invoicer.operator_handlers import apply_signed_operator
from services.invoicer.operator_rules import OperatorCommand
from services.invoicer.plan_handlers import apply_signed_plan
from services.invoicer.schedule import run_cycle
from services.invoicer.settings import InvoicerSettings
from services.invoicer.subscription_handlers import (
    apply_checkout_completed,
    apply_signed_subscription,
)

log = logging.getLogger(__name__)
#: The consumer group (before the topic prefix) of each topic the worker reads.
GROUPS = dict(CONSUMES)


def build(
    settings: InvoicerSettings, store: InvoicerStore, stop: asyncio.Event | None = None
) -> KafkaBroker:
    """The broker with the invoicer's two subscribers (configuration and operator commands by
    event type; payment outcomes), both in consumer group `invoicer`, on
    the common runtime (`services.common.consumer`: retry in place until `stop`, dead letters).

    Raises `MissingSigningKey` when `BILLING_COMMAND_SIGNING_KEY` is unset or too short."""
    signing_key = settings.signing_key()
    broker = make_broker(settings, name=SERVICE)
    publish = raw_publisher(broker)

    async def on_config(event: BillingConfigSubmitted, _: MessageSource) -> object:
        return await apply_signed_config(store, event, signing_key)

    async def on_operator(event: OperatorCommand, _: MessageSource) -> object:
        return await apply_signed_operator(store, event, signing_key)

    async def on_plan(event: PlanSubmitted, _: MessageSource) -> object:
        return await apply_signed_plan(store, event, signing_key)

    async def on_payment(event: PaymentSucceeded | PaymentFailed, _: MessageSource) -> object:
        return await apply_payment(store, event)

    async def on_subscription(event: SubscriptionRequested, _: MessageSource) -> object:
        return await apply_signed_subscription(store, event, signing_key)

    async def on_checkout(event: SubscriptionCheckoutCompleted, _: MessageSource) -> object:
        return await apply_checkout_completed(store, event)

    async def on_refund(event: PaymentRefunded, _: MessageSource) -> object:
        return await apply_refund(store, event)

    routes: dict[str, dict[type[Contract], Handler]] = {
        TOPIC_TENANT_CONFIG: {BillingConfigSubmitted: on_config, CreditGranted: on_operator,
                              CouponCreated: on_operator, CouponRedeemed: on_operator,
                              PlanSubmitted: on_plan,
                              SubscriptionRequested: on_subscription},
        TOPIC_PAYMENT: {PaymentSucceeded: on_payment, PaymentFailed: on_payment,
                        PaymentRefunded: on_refund, SubscriptionCheckoutCompleted: on_checkout},
    }
    for topic, handlers in routes.items():
        subscribe(broker, settings, service=SERVICE, topic=topic, group=GROUPS[topic],
                  handlers=handlers, publish=publish, stop=stop)
    return broker


def cycle_task(settings: InvoicerSettings, store: InvoicerStore) -> Task:
    """Runs the cycle on the real clock every interval until stopped (never when 0)."""

    async def step() -> None:
        report = await run_cycle(store, utc_now(), settings.invoicer_issue_batch)
        if report.issued or report.overdue:
            log.info("cycle: issued %s, overdue %s", report.issued, report.overdue)

    return periodic_task(settings.invoicer_cycle_interval_seconds, step, "invoicer-cycle")


async def serve(stop: asyncio.Event, settings: InvoicerSettings | None = None) -> None:
    """Run the invoicer worker until `stop` is set. Refuses to start (`MissingSigningKey`,
    naming the variable) without a command signing key."""
    settings = settings or InvoicerSettings()
    settings.signing_key()
    client = make_client(settings)
    store = InvoicerStore(client, database(client, settings))
    broker = build(settings, store, stop)

    relay = outbox_relay(broker, settings, store.db, OUTBOX, SERVICE)
    await serve_worker(
        settings, stop, broker=broker, client=client, on_start=store.ensure_indexes,
        tasks=[relay.run, cycle_task(settings, store)],
    )
