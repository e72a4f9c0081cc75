"""The payments worker (`billing run payments`): subscribers, outbox relay and dunning loop.

Consumes `InvoiceIssued` from `billing.invoice.v1` (other types on that topic are skipped)
and `StripeEventReceived` from `billing.stripe-events.v1` in group `payments`. A message that
cannot be read or that Stripe refuses is dead-lettered with the reason. A Stripe outage is
not bad input: the message is retried with exponential back-off capped at
`payments_retry_cap_seconds` for as long as the outage lasts, never dead-lettered, while the
ops endpoint keeps answering (docs/payments.md "Outages"); on shutdown it is handed back
unacknowledged. A database error is not caught: the message is not acknowledged and comes
back; any other error dead-letters the message (`handler_error`) so it cannot block its
partition. Offsets are committed after the handler's effects are durable. The worker refuses
to start without `BILLING_STRIPE_WEBHOOK_SECRET`.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.errors import PyMongoError

from contracts import TOPIC_INVOICE, TOPIC_STRIPE_EVENTS, InvoiceIssued, StripeEventReceived
from contracts.base import Contract, utc_now
from services.common.codec import decode
from services.common.errors import InvalidMessage, PermanentError, RetryableError
from services.common.mongo import make_client
from services.common.periodic import Task, periodic_task
from services.common.relay import outbox_relay
from services.common.worker import make_broker, send_dead_letter, serve_worker
from services.payments import handlers
from services.payments.adapters.metrics import STRIPE_OUTAGE_RETRIES
from services.payments.adapters.stripe_gateway import StripeGateway
from services.payments.bootstrap import mongo_store
from services.payments.handlers import Deps
from services.payments.names import CONSUMES, OUTBOX, SERVICE
from services.payments.settings import PaymentsSettings

log = logging.getLogger(__name__)


async def consume(
    msg: Any, broker: KafkaBroker, deps: Deps, accept: type[Contract],
    handle: Callable[[Any, Deps], Awaitable[str]],
) -> None:
    """Decode one Kafka record and run `handle`, mapping errors to retry or dead-letter."""
    raw = msg.raw_message
    letter = {"service": SERVICE, "topic": raw.topic, "partition": raw.partition,
              "offset": raw.offset, "key": raw.key, "value": raw.value}
    try:
        event = decode(raw.value, raw.headers, [accept])
    except InvalidMessage as exc:
        await send_dead_letter(broker, deps.settings, reason=exc.reason, detail=exc.detail,
                               **letter)
        return
    if event is None:
        return
    n = 0
    while True:
        try:
            outcome = await handle(event, deps)
            log.info("%s -> %s", type(event).__name__, outcome,
                     extra={"event_id": getattr(event, "event_id", None)})
            return
        except PermanentError as exc:
            await send_dead_letter(broker, deps.settings, reason=exc.reason,
                                   detail=exc.detail, **letter)
            return
        except PyMongoError:
            raise  # not acknowledged: the message comes back once MongoDB answers
        except RetryableError as exc:
            n += 1
            delay = min(deps.settings.payments_retry_cap_seconds,
                        max(0.05, deps.settings.stripe_retry_base_seconds * 2 ** min(n, 30)))
            log.warning("transient failure (try %d), again in %.1f s: %s", n, delay, exc)
            STRIPE_OUTAGE_RETRIES.inc()
            if await _stopped(deps, delay):
                raise  # shutting down: not acknowledged, so it comes back after the restart
        except Exception as exc:  # a poison message must not block its partition
            log.exception("unexpected error handling %s", type(event).__name__)
            await send_dead_letter(broker, deps.settings, reason="handler_error",
                                   detail=f"{type(exc).__name__}: {exc}", **letter)
            return


async def _stopped(deps: Deps, delay: float) -> bool:
    """Wait `delay` seconds; True at once if the worker is stopping meanwhile."""
    if deps.stop is None:
        await asyncio.sleep(delay)
        return False
    try:
        await asyncio.wait_for(deps.stop.wait(), timeout=delay)
    except TimeoutError:
        return False
    return True


#: The contract each consumed topic carries for this worker (other types on the topic are
#: skipped) and the use case that handles it; the subscriptions themselves are `CONSUMES`.
ROUTES: dict[str, tuple[type[Contract], Callable[[Any, Deps], Awaitable[str]]]] = {
    TOPIC_INVOICE: (InvoiceIssued, handlers.handle_invoice_issued),
    TOPIC_STRIPE_EVENTS: (StripeEventReceived, handlers.handle_stripe_event),
}


def build_broker(deps: Deps) -> KafkaBroker:
    """The broker with one subscriber per entry of `CONSUMES` (`names.py`)."""
    broker = make_broker(deps.settings, name=SERVICE)
    for topic, group in CONSUMES:
        _subscribe(broker, deps, topic, group)
    return broker


def _subscribe(broker: KafkaBroker, deps: Deps, topic: str, group: str) -> None:
    """Subscribe `group` to `topic`: offsets committed once the handler returned."""
    accept, handle = ROUTES[topic]

    async def on_message(msg: KafkaMessage) -> None:
        await consume(msg, broker, deps, accept, handle)

    on_message.__name__ = f"on_{topic.replace('.', '_').replace('-', '_')}"
    subscriber = broker.subscriber(
        deps.settings.topic(topic), group_id=deps.settings.group(group),
        auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR)
    subscriber(on_message)


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
