"""The invoicer worker: consumes configuration commands and payment outcomes, relays its
outbox to `billing.invoice.v1`, and runs the billing cycle on the real clock every
`BILLING_INVOICER_CYCLE_INTERVAL_SECONDS` (0 = never).

Offsets are committed only after the effect is durable (FastStream `NACK_ON_ERROR`: an
unexpected error rewinds the partition and the message is tried again); bad input is
dead-lettered with its reason and acknowledged.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from contracts import (
    TOPIC_PAYMENT,
    TOPIC_TENANT_CONFIG,
    BillingConfigSubmitted,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
)
from contracts.base import Contract, utc_now
from services.common.codec import decode
from services.common.errors import PermanentError
from services.common.mongo import database, make_client
from services.common.periodic import Task, periodic_task
from services.common.relay import outbox_relay
from services.common.worker import make_broker, send_dead_letter, serve_worker
from services.invoicer.adapters.store import InvoicerStore
from services.invoicer.handlers import apply_payment, apply_refund, apply_signed_config
from services.invoicer.names import CONSUMES, OUTBOX, SERVICE
from services.invoicer.schedule import run_cycle
from services.invoicer.settings import InvoicerSettings

log = logging.getLogger(__name__)
Handler = Callable[[Contract], Awaitable[object]]
#: The consumer group (before the topic prefix) of each topic the worker reads.
GROUPS = dict(CONSUMES)


def raw_body(message: Any) -> bytes:
    """Hand the handler the message's bytes: `codec.decode` reads them (a body that is not
    JSON is dead-lettered there, never retried forever)."""
    return bytes(message.body)


def build(settings: InvoicerSettings, store: InvoicerStore) -> KafkaBroker:
    """The broker with the invoicer's two subscribers, both in consumer group `invoicer`.

    Raises `MissingSigningKey` when `BILLING_COMMAND_SIGNING_KEY` is unset or too short."""
    signing_key = settings.signing_key()
    broker = make_broker(settings, name=SERVICE)

    async def consume(message: KafkaMessage, accept: list[type[Contract]], handle: Handler) -> None:
        record = message.raw_message
        try:
            event = decode(record.value, record.headers, accept)  # type: ignore[union-attr]
            if event is not None:
                await handle(event)
        except PermanentError as exc:
            await send_dead_letter(
                broker, settings, service=SERVICE, topic=record.topic,  # type: ignore[union-attr]
                partition=record.partition, offset=record.offset,  # type: ignore[union-attr]
                key=record.key, value=record.value,  # type: ignore[union-attr]
                reason=exc.reason, detail=exc.detail,
            )
        except Exception:
            log.exception("invoicer: processing failed; the message will be retried")
            await asyncio.sleep(settings.invoicer_retry_backoff_seconds)
            raise

    @broker.subscriber(
        settings.topic(TOPIC_TENANT_CONFIG), group_id=settings.group(GROUPS[TOPIC_TENANT_CONFIG]),
        auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR, decoder=raw_body,
    )
    async def on_config(body: bytes, message: KafkaMessage) -> None:
        await consume(message, [BillingConfigSubmitted],
                      lambda e: apply_signed_config(store, e, signing_key))  # type: ignore[arg-type]

    @broker.subscriber(
        settings.topic(TOPIC_PAYMENT), group_id=settings.group(GROUPS[TOPIC_PAYMENT]),
        auto_offset_reset="earliest", ack_policy=AckPolicy.NACK_ON_ERROR, decoder=raw_body,
    )
    async def on_payment(body: bytes, message: KafkaMessage) -> None:
        await consume(message, [PaymentSucceeded, PaymentFailed, PaymentRefunded],
                      lambda e: apply_refund(store, e) if isinstance(e, PaymentRefunded)
                      else apply_payment(store, e))  # type: ignore[arg-type]

    return broker


def cycle_task(settings: InvoicerSettings, store: InvoicerStore) -> Task:
    """Runs the cycle on the real clock every interval until stopped (never when 0)."""

    async def step() -> None:
        report = await run_cycle(store, utc_now())
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
    broker = build(settings, store)

    relay = outbox_relay(broker, settings, store.db, OUTBOX, SERVICE)
    await serve_worker(
        settings, stop, broker=broker, client=client, on_start=store.ensure_indexes,
        tasks=[relay.run, cycle_task(settings, store)],
    )
