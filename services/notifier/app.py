"""The notifier worker: consumes `billing.invoice.v1`, emails tenants, relays its outbox; keeps
a projection of tenants' contact settings from `billing.tenant.v1` (`BillingConfigApplied`).

Two subscribers in group `notifier`; offsets are committed only after `notify` made its effect
durable (ack after processing). A retryable failure (SMTP or MongoDB unavailable) nacks the
message: FastStream seeks back to it, so it is consumed again rather than dropped. Unreadable
messages and unexpected handler errors are dead-lettered and the partition moves on.
"""

import asyncio
import logging

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pymongo.errors import PyMongoError

from contracts import (
    TOPIC_INVOICE,
    TOPIC_TENANT,
    BillingConfigApplied,
    InvoiceIssued,
    InvoiceStatusChanged,
)
from services.common.codec import decode
from services.common.errors import PermanentError, RetryableError
from services.common.mongo import database, make_client
from services.common.relay import outbox_relay
from services.common.worker import make_broker, send_dead_letter, serve_worker
from services.notifier.adapters.mailer import Mailer, SmtpMailer
from services.notifier.adapters.store import MongoNotificationStore
from services.notifier.domain import InvoiceEvent
from services.notifier.handlers import (
    MessageSource,
    NotifierDeps,
    notify,
    record_config_applied,
)
from services.notifier.names import OUTBOX, SERVICE
from services.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)


def create_broker(settings: NotifierSettings, deps: NotifierDeps) -> KafkaBroker:
    """The broker with the notifier's subscriber on the invoice topic."""
    broker = make_broker(settings, name=SERVICE)

    @broker.subscriber(
        settings.topic(TOPIC_INVOICE),
        group_id=settings.group(SERVICE),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_invoice_event(msg: KafkaMessage) -> None:
        await consume(msg.raw_message, broker, deps)

    @broker.subscriber(
        settings.topic(TOPIC_TENANT),
        group_id=settings.group(SERVICE),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
    )
    async def on_tenant_event(msg: KafkaMessage) -> None:
        await consume_tenant(msg.raw_message, broker, deps)

    return broker


async def consume_tenant(record: ConsumerRecord[bytes, bytes], broker: KafkaBroker,
                         deps: NotifierDeps) -> None:
    """Project a `BillingConfigApplied` into the contact settings; dead-letter what cannot be
    read. Raises (nack, redelivery) on MongoDB errors."""
    try:
        event = decode(record.value, record.headers, accept=(BillingConfigApplied,))
        if event is not None:
            await record_config_applied(event, deps)  # type: ignore[arg-type]
    except PermanentError as exc:
        source = MessageSource(record.topic, record.partition, record.offset, record.key,
                               record.value)
        await _dead_letter(broker, deps.settings, source, exc.reason, exc.detail)


async def consume(record: ConsumerRecord[bytes, bytes], broker: KafkaBroker,
                  deps: NotifierDeps) -> None:
    """Decode one record and notify; dead-letter what cannot be processed.

    Raises (so the message is nacked and redelivered) on `RetryableError` and MongoDB errors.
    """
    source = MessageSource(record.topic, record.partition, record.offset, record.key,
                           record.value)
    try:
        event = decode(record.value, record.headers, accept=(InvoiceIssued, InvoiceStatusChanged))
        if event is None:
            return
        outcome = await notify(event, deps, source)  # type: ignore[arg-type]
        log.info("%s: %s", outcome, _describe(event))  # type: ignore[arg-type]
    except (RetryableError, PyMongoError):
        raise
    except PermanentError as exc:
        await _dead_letter(broker, deps.settings, source, exc.reason, exc.detail)
    except Exception as exc:  # a poison message must not block its partition
        log.exception("notifier failed on %s:%s@%s", record.topic, record.partition, record.offset)
        await _dead_letter(broker, deps.settings, source, "internal_error", repr(exc))


def _describe(event: InvoiceEvent) -> str:
    return f"{type(event).__name__} {event.invoice_number} ({event.event_id})"


async def _dead_letter(broker: KafkaBroker, settings: NotifierSettings, source: MessageSource,
                       reason: str, detail: str) -> None:
    await send_dead_letter(
        broker, settings, service=SERVICE, topic=source.topic, partition=source.partition,
        offset=source.offset, key=source.key, value=source.value, reason=reason, detail=detail,
    )


async def run_notifier(
    stop: asyncio.Event, settings: NotifierSettings | None = None, mailer: Mailer | None = None
) -> None:
    """Run the notifier until `stop` is set (`billing run notifier`).

    `mailer` defaults to SMTP per `BILLING_SMTP_*`. Background: the outbox relay publishing
    `NotificationSent`, `NotificationFailed` and dead letters.
    """
    settings = settings or NotifierSettings()
    client = make_client(settings)
    db = database(client, settings)
    store = MongoNotificationStore(client, db)
    deps = NotifierDeps(store=store, mailer=mailer or SmtpMailer(settings), settings=settings)
    broker = create_broker(settings, deps)
    relay = outbox_relay(broker, settings, db, OUTBOX, SERVICE)
    await serve_worker(
        settings, stop, broker=broker, client=client, on_start=store.ensure_indexes,
        tasks=[relay.run],
    )

