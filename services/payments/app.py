"""The payments worker (`billing run payments`): subscribers, outbox relay and dunning loop.

Consumes `InvoiceIssued` from `billing.invoice.v1` (other types on that topic are skipped)
and `StripeEventReceived` from `billing.stripe-events.v1` in group `payments`. A message that
cannot be read or that Stripe refuses is dead-lettered with the reason; a transient error is
retried `payments_message_attempts` times with back-off, then dead-lettered
(`stripe_unavailable`). A database error is not caught: the message is not acknowledged and
comes back; any other error dead-letters the message (`handler_error`) so it cannot block
its partition. Offsets are committed after the handler's effects are durable.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.errors import PyMongoError

from contracts import TOPIC_INVOICE, TOPIC_STRIPE_EVENTS, InvoiceIssued, StripeEventReceived
from contracts.base import Contract, utc_now
from services.common.codec import decode
from services.common.errors import InvalidMessage, PermanentError, RetryableError
from services.common.mongo import database, make_client
from services.common.outbox import OutboxRelay
from services.common.worker import make_broker, publish_raw, send_dead_letter, serve_worker
from services.payments import handlers
from services.payments.adapters.store import OUTBOX, PaymentsStore
from services.payments.adapters.stripe_gateway import PaymentGateway, StripeGateway
from services.payments.handlers import Deps
from services.payments.settings import PaymentsSettings

log = logging.getLogger(__name__)
SERVICE = "payments"


@asynccontextmanager
async def open_deps(settings: PaymentsSettings,
                    gateway: PaymentGateway | None = None) -> AsyncIterator[Deps]:
    """Deps for one-off commands (CLI, demo): MongoDB store and Stripe gateway, closed after."""
    client = make_client(settings)
    store = PaymentsStore(client, database(client, settings))
    gw = gateway or StripeGateway(settings)
    try:
        await store.ensure_indexes()
        yield Deps(settings, store, gw)
    finally:
        await gw.close()
        await client.close()


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
    attempts = deps.settings.payments_message_attempts
    for n in range(attempts):
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
            log.warning("transient failure (try %d of %d): %s", n + 1, attempts, exc)
            if n == attempts - 1:
                await send_dead_letter(broker, deps.settings, reason="stripe_unavailable",
                                       detail=str(exc), **letter)
                return
            await asyncio.sleep(min(30.0, deps.settings.stripe_retry_base_seconds * 4 ** (n + 1)))
        except Exception as exc:  # a poison message must not block its partition
            log.exception("unexpected error handling %s", type(event).__name__)
            await send_dead_letter(broker, deps.settings, reason="handler_error",
                                   detail=f"{type(exc).__name__}: {exc}", **letter)
            return


def build_broker(deps: Deps) -> KafkaBroker:
    """The broker with the two subscribers of the payments group."""
    settings = deps.settings
    broker = make_broker(settings, name=SERVICE)
    options: dict[str, Any] = {
        "group_id": settings.group(SERVICE), "auto_offset_reset": "earliest",
        "ack_policy": AckPolicy.NACK_ON_ERROR,
    }

    @broker.subscriber(settings.topic(TOPIC_INVOICE), **options)  # type: ignore[untyped-decorator]
    async def on_invoice(msg: KafkaMessage) -> None:
        await consume(msg, broker, deps, InvoiceIssued, handlers.handle_invoice_issued)

    @broker.subscriber(  # type: ignore[untyped-decorator]
        settings.topic(TOPIC_STRIPE_EVENTS), **options)
    async def on_stripe_event(msg: KafkaMessage) -> None:
        await consume(msg, broker, deps, StripeEventReceived, handlers.handle_stripe_event)

    return broker


def dunning_loop(deps: Deps) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """Run due retries on the real clock every `payments_dunning_interval_seconds` (0: never)."""
    interval = deps.settings.payments_dunning_interval_seconds

    async def run(stop: asyncio.Event) -> None:
        while interval > 0 and not stop.is_set():
            try:
                made = await handlers.run_due_retries(utc_now(), deps)
                if made:
                    log.info("dunning: %d retries", made)
            except Exception:
                log.exception("dunning run failed; next run in %s s", interval)
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                pass

    return run


async def run_payments(settings: PaymentsSettings, stop: asyncio.Event) -> None:
    """The worker's main: serve until `stop` is set (SIGTERM)."""
    client = make_client(settings)
    store = PaymentsStore(client, database(client, settings))
    gateway = StripeGateway(settings)
    deps = Deps(settings, store, gateway)
    broker = build_broker(deps)

    async def publish(topic: str, key: bytes, value: bytes, headers: Any) -> None:
        await publish_raw(broker, topic, key, value, headers)

    relay = OutboxRelay(store.db, OUTBOX, publish, settings.topic)
    tasks: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = [
        relay.run, dunning_loop(deps)]
    try:
        await serve_worker(settings, stop, broker=broker, client=client,
                           on_start=store.ensure_indexes, tasks=tasks)
    finally:
        await gateway.close()
