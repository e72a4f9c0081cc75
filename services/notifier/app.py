"""The notifier worker: consumes `billing.invoice.v1`, emails tenants, relays its outbox; keeps
a projection of tenants' contact settings from `billing.tenant.v1` (`BillingConfigApplied`);
emails usage alerts from `billing.usage-alerts.v1` (`UsageThresholdReached`, usage_alerts.py).

Three subscribers in group `notifier` on the common runtime (`services.common.consumer`,
docs/design.md#reliability); offsets are committed only after `notify` made its effect durable.
A retryable failure (SMTP or MongoDB unavailable) is retried in place with back-off while it
lasts; on shutdown the message is handed back unacknowledged and consumed again rather than
dropped. Unreadable messages and unexpected handler errors are dead-lettered and the partition
moves on.
"""

import asyncio
import logging

from faststream.kafka import KafkaBroker

from contracts import (
    TOPIC_INVOICE,
    TOPIC_TENANT,
    TOPIC_USAGE_ALERTS,
    BillingConfigApplied,
    InvoiceIssued,
    InvoiceStatusChanged,
    UsageThresholdReached,
)
from contracts.base import Contract
from services.common.consumer import Handler, subscribe
from services.common.deadletter import MessageSource
from services.common.mongo import database, make_client
from services.common.relay import outbox_relay
from services.common.worker import make_broker, raw_publisher, serve_worker
from services.notifier.adapters.mailer import Mailer, SmtpMailer
from services.notifier.adapters.store import MongoNotificationStore
from services.notifier.domain import InvoiceEvent
from services.notifier.handlers import NotifierDeps, notify, record_config_applied
from services.notifier.names import OUTBOX, SERVICE
from services.notifier.settings import NotifierSettings
from services.notifier.usage_alerts import notify_usage_alert

log = logging.getLogger(__name__)


def create_broker(
    settings: NotifierSettings, deps: NotifierDeps, stop: asyncio.Event | None = None
) -> KafkaBroker:
    """The broker with the notifier's subscribers (invoice events, tenant contact settings,
    usage alerts) in group `notifier`, on the common runtime (`services.common.consumer`)."""
    broker = make_broker(settings, name=SERVICE)
    publish = raw_publisher(broker)

    async def on_invoice_event(event: InvoiceEvent, source: MessageSource) -> str:
        outcome = await notify(event, deps, source)
        log.info("%s: %s", outcome, _describe(event))
        return outcome

    async def on_usage_alert(event: UsageThresholdReached, source: MessageSource) -> str:
        return await notify_usage_alert(event, deps)

    async def on_config_applied(event: BillingConfigApplied, source: MessageSource) -> bool:
        return await record_config_applied(event, deps)

    routes: dict[str, dict[type[Contract], Handler]] = {
        TOPIC_INVOICE: {InvoiceIssued: on_invoice_event, InvoiceStatusChanged: on_invoice_event},
        TOPIC_TENANT: {BillingConfigApplied: on_config_applied},
        TOPIC_USAGE_ALERTS: {UsageThresholdReached: on_usage_alert},
    }
    for topic, handlers in routes.items():
        subscribe(broker, settings, service=SERVICE, topic=topic, group=SERVICE,
                  handlers=handlers, publish=publish, stop=stop)
    return broker


def _describe(event: InvoiceEvent) -> str:
    return f"{type(event).__name__} {event.invoice_number} ({event.event_id})"


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
    broker = create_broker(settings, deps, stop)
    relay = outbox_relay(broker, settings, db, OUTBOX, SERVICE)
    await serve_worker(
        settings, stop, broker=broker, client=client, on_start=store.ensure_indexes,
        tasks=[relay.run],
    )

