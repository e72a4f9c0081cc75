"""The payments worker (`billing run payments`): subscribers, outbox relay and dunning loop.

Consumes `InvoiceIssued` from `billing.invoice.v1` (other types on that topic are ignored)
and `StripeEventReceived` from `billing.stripe-events.v1` in group `payments`, on the common
runtime (`services.common.consumer`, docs/design.md#reliability): a message that cannot be
read or that Stripe refuses is dead-lettered with the reason; a Stripe or MongoDB outage is
retried in place with back-off capped at `payments_retry_cap_seconds` for as long as it lasts,
never dead-lettered, while the ops endpoint keeps answering (docs/payments.md "Outages"); on
shutdown it is handed back unacknowledged; any other error dead-letters the message
(`internal_error`) so it cannot block its partition. Offsets are committed after the handler's
effects are durable. The worker refuses to start without `BILLING_STRIPE_WEBHOOK_SECRET`.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from faststream.kafka import KafkaBroker

from contracts import TOPIC_INVOICE, TOPIC_STRIPE_EVENTS, InvoiceIssued, StripeEventReceived
from contracts.base import Contract, utc_now
from services.common.consumer import subscribe
from services.common.deadletter import MessageSource
from services.common.mongo import make_client
from services.common.periodic import Task, periodic_task
from services.common.relay import outbox_relay
from services.common.worker import make_broker, raw_publisher, serve_worker
from services.payments import handlers
from services.payments.adapters.stripe_gateway import StripeGateway
from services.payments.bootstrap import mongo_store
from services.payments.handlers import Deps
from services.payments.names import CONSUMES, OUTBOX, SERVICE
from services.payments.settings import PaymentsSettings

log = logging.getLogger(__name__)


#: The contract each consumed topic carries for this worker (other types on the topic are
#: ignored) and the use case that handles it; the subscriptions themselves are `CONSUMES`.
ROUTES: dict[str, tuple[type[Contract], Callable[[Any, Deps], Awaitable[str]]]] = {
    TOPIC_INVOICE: (InvoiceIssued, handlers.handle_invoice_issued),
    TOPIC_STRIPE_EVENTS: (StripeEventReceived, handlers.handle_stripe_event),
}


def build_broker(deps: Deps) -> KafkaBroker:
    """The broker with one subscriber per entry of `CONSUMES` (`names.py`), on the common
    runtime (`services.common.consumer`): a Stripe outage is retried in place with back-off
    from `stripe_retry_base_seconds` up to `payments_retry_cap_seconds` until `deps.stop`."""
    broker = make_broker(deps.settings, name=SERVICE)
    publish = raw_publisher(broker)
    for topic, group in CONSUMES:
        accept, use_case = ROUTES[topic]
        subscribe(
            broker, deps.settings, service=SERVICE, topic=topic, group=group,
            handlers={accept: partial(_handle, use_case, deps)}, publish=publish,
            stop=deps.stop, base=max(0.05, deps.settings.stripe_retry_base_seconds),
            cap=deps.settings.payments_retry_cap_seconds,
        )
    return broker


async def _handle(
    use_case: Callable[[Any, Deps], Awaitable[str]], deps: Deps, event: Contract,
    source: MessageSource,
) -> str:
    outcome = await use_case(event, deps)
    log.info("%s -> %s", type(event).__name__, outcome,
             extra={"event_id": getattr(event, "event_id", None)})
    return outcome


def dunning_loop(deps: Deps) -> Task:
    """Run due retries on the real clock every `payments_dunning_interval_seconds` (0: never)."""

    async def step() -> None:
        made = await handlers.run_due_retries(utc_now(), deps)
        if made:
            log.info("dunning: %d retries", made)

    return periodic_task(deps.settings.payments_dunning_interval_seconds, step, "payments-dunning")


async def run_payments(settings: PaymentsSettings, stop: asyncio.Event) -> None:
    """The worker's main: serve until `stop` is set (SIGTERM). Raises `SystemExit` naming
    `BILLING_STRIPE_WEBHOOK_SECRET` when it is not set."""
    settings.require_webhook_secret()
    client = make_client(settings)
    store = mongo_store(client, settings)
    gateway = StripeGateway(settings)
    deps = Deps(settings, store, gateway, stop)
    broker = build_broker(deps)

    relay = outbox_relay(broker, settings, store.db, OUTBOX, SERVICE)
    tasks: list[Task] = [relay.run, dunning_loop(deps)]
    try:
        await serve_worker(settings, stop, broker=broker, client=client,
                           on_start=store.ensure_indexes, tasks=tasks)
    finally:
        await gateway.close()
