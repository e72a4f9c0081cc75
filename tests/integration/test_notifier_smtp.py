"""The notifier over a real SMTP conversation (aiosmtpd sink), MongoDB and Kafka.

Worker tests run `run_notifier` in-process against the test Kafka; the rest call `notify`
with the MongoDB store and the SMTP mailer directly.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker

from contracts import (
    TOPIC_DEAD_LETTER,
    TOPIC_INVOICE,
    TOPIC_NOTIFICATION,
    TOPIC_TENANT,
    BillingConfigApplied,
)
from contracts.base import Event
from services.common.codec import event_type
from services.common.kafka import ensure_topics
from services.common.mongo import make_client
from services.common.worker import publish_event
from services.devstack.ports import free_port
from services.devstack.smtp_sink import start_sink
from services.notifier.adapters.mailer import SmtpMailer
from services.notifier.adapters.store import MongoNotificationStore
from services.notifier.app import run_notifier
from services.notifier.handlers import NotifierDeps, notify
from services.notifier.settings import NotifierSettings
from tests.support.polling import eventually
from tests.unit.test_notifier_domain import issued_event, status_event

pytestmark = pytest.mark.integration
DEADLINE = 90.0


def mails(directory: Path) -> list[EmailMessage]:
    parser = BytesParser(policy=policy.default)
    return [parser.parsebytes(p.read_bytes()) for p in sorted(directory.glob("*.eml"))]  # type: ignore[misc]


def notifier_settings(port: int, **changes: Any) -> NotifierSettings:
    return NotifierSettings(
        smtp_host="127.0.0.1", smtp_port=port, smtp_from="Billing <billing@platform.example>",
        smtp_retry_attempts=2, smtp_retry_base_seconds=0.1, smtp_timeout_seconds=5, **changes,
    )


@asynccontextmanager
async def running_notifier(settings: NotifierSettings) -> AsyncIterator[KafkaBroker]:
    """The notifier worker in this process, and a broker to publish with."""
    await ensure_topics(settings)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_notifier(stop, settings))
    broker = KafkaBroker(settings.kafka_bootstrap_servers, enable_idempotence=False)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()
        stop.set()
        await asyncio.wait_for(worker, 60)


async def publish(broker: KafkaBroker, settings: NotifierSettings, *events: Event) -> None:
    for event in events:
        await publish_event(broker, settings, event, TOPIC_INVOICE, "acme")


async def topic_events(settings: NotifierSettings, topic: str, want: int) -> list[str]:
    """Event types on `topic` from the beginning, once `want` have arrived."""
    return [name for name, _ in await topic_records(settings, topic, want)]


async def topic_records(
    settings: NotifierSettings, topic: str, want: int
) -> list[tuple[str, dict[str, Any]]]:
    """(event type, JSON body) of the records on `topic`, once `want` have arrived."""
    consumer = AIOKafkaConsumer(
        settings.topic(topic), bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    found: list[tuple[str, dict[str, Any]]] = []

    async def arrived() -> bool:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            found.extend((event_type(r.headers) or "?", json.loads(r.value or b"null"))
                         for r in records)
        return len(found) >= want

    try:
        await eventually(arrived, what=f"{want} records on {topic}", seconds=DEADLINE)
    finally:
        await consumer.stop()
    return found


async def test_each_kind_of_invoice_event_sends_one_email_and_a_notification_sent_event(
    common_settings: Any, tmp_path: Path
) -> None:
    sink = start_sink(tmp_path / "mail")
    settings = notifier_settings(sink.port)
    events = [issued_event(), status_event("failed"), status_event("overdue", previous="failed"),
              status_event("paid", previous="overdue")]
    try:
        async with running_notifier(settings) as broker:
            await publish(broker, settings, *events)
            await eventually(lambda: len(mails(tmp_path / "mail")) == 4, what="four emails")
            # Redelivered and repeated events, then a marker on the same partition.
            await publish(broker, settings, *events, status_event("failed"),
                          issued_event("inv-2", amount=4900, invoice_number="INV-2024-0008"))
            await eventually(lambda: len(mails(tmp_path / "mail")) >= 5, what="the marker's email")
            sent_events = await topic_events(settings, TOPIC_NOTIFICATION, 5)
    finally:
        sink.stop()
    received = mails(tmp_path / "mail")
    assert len(received) == 5
    by_subject = {m["Subject"]: m for m in received}
    expected = {
        "Your invoice INV-2024-0007 is ready": "$123.45",
        "Payment failed for invoice INV-2024-0007": "$123.45",
        "Reminder: invoice INV-2024-0007 is overdue": "$123.45",
        "Receipt for invoice INV-2024-0007: payment received": "$123.45",
    }
    for subject, amount in expected.items():
        message = by_subject[subject]
        assert message["To"] == "billing@acme.example"
        body = message.get_body(("plain",))
        assert body is not None and amount in body.get_content()  # type: ignore[attr-defined]
    attachments = list(by_subject["Your invoice INV-2024-0007 is ready"].iter_attachments())
    assert [a.get_content()[:4] for a in attachments] == [b"%PDF"]  # type: ignore[attr-defined]
    assert sent_events == ["NotificationSent"] * 5


async def test_the_smtp_server_down_then_up_delivers_the_email_once(
    common_settings: Any, tmp_path: Path
) -> None:
    port = free_port()
    settings = notifier_settings(port)
    client = make_client(settings)
    sent = client[settings.mongo_db]["notifier_sent"]
    sink = None
    try:
        async with running_notifier(settings) as broker:
            await publish(broker, settings, issued_event())
            # Retried in-process, handed back to Kafka, consumed again: attempts grow.
            await eventually(
                lambda: sent.find_one({"_id": "inv-1:invoice_issued", "attempts": {"$gte": 2}}),
                what="a second attempt while the server is down",
            )
            sink = start_sink(tmp_path / "mail", port=port)
            await eventually(
                lambda: sent.find_one({"_id": "inv-1:invoice_issued", "status": "sent"}),
                what="the email sent",
            )
            await publish(broker, settings, issued_event("inv-2", invoice_number="INV-2024-0008"))
            await eventually(lambda: len(mails(tmp_path / "mail")) >= 2, what="the marker's email")
    finally:
        if sink is not None:
            sink.stop()
        await client.close()
    numbers = sorted(m["X-Billing-Notification"] for m in mails(tmp_path / "mail"))
    assert numbers == ["inv-1:invoice_issued", "inv-2:invoice_issued"]


async def test_a_permanent_recipient_refusal_is_reported_and_dead_lettered_not_retried(
    common_settings: Any, tmp_path: Path
) -> None:
    sink = start_sink(tmp_path / "mail", refuse=frozenset({"bounce@acme.example"}))
    settings = notifier_settings(sink.port)
    try:
        async with running_notifier(settings) as broker:
            await broker.publish(b"{not json", settings.topic(TOPIC_INVOICE), key=b"acme",
                                 headers={"event-type": "InvoiceIssued"})
            await publish(broker, settings, status_event("overdue", email="bounce@acme.example"))
            await publish(broker, settings, status_event("overdue", email="bounce@acme.example"))
            notifications = await topic_events(settings, TOPIC_NOTIFICATION, 1)
            letters = await topic_records(settings, TOPIC_DEAD_LETTER, 2)
            await publish(broker, settings, issued_event("inv-2", invoice_number="INV-2024-0008"))
            await eventually(lambda: len(mails(tmp_path / "mail")) >= 1, what="the marker's email")
            notifications = await topic_events(settings, TOPIC_NOTIFICATION, 2)
    finally:
        sink.stop()
    assert notifications == ["NotificationFailed", "NotificationSent"]
    reasons = sorted(body["reason"] for _, body in letters)
    assert reasons == ["invalid_json", "smtp_permanent_failure"]
    assert all(name == "DeadLettered" and body["service"] == "notifier" for name, body in letters)
    assert [m["To"] for m in mails(tmp_path / "mail")] == ["billing@acme.example"]


@asynccontextmanager
async def notifier_deps(mail: Path) -> AsyncIterator[NotifierDeps]:
    """The notifier's dependencies on a fresh MongoDB database and an SMTP sink writing to
    `mail`; both are removed on exit."""
    sink = start_sink(mail)
    settings = notifier_settings(sink.port)
    client = make_client(settings)
    store = MongoNotificationStore(client, client.get_database(settings.mongo_db))
    await store.ensure_indexes()
    yield NotifierDeps(store=store, mailer=SmtpMailer(settings), settings=settings)
    sink.stop()
    await client.drop_database(settings.mongo_db)
    await client.close()


@pytest.fixture
async def mongo_deps(common_settings: Any, tmp_path: Path) -> AsyncIterator[Any]:
    async with notifier_deps(tmp_path / "mail") as deps:
        yield deps


async def test_a_redelivered_event_sends_nothing_more(mongo_deps: NotifierDeps,
                                                      tmp_path: Path) -> None:
    event = status_event("paid")
    assert [await notify(event, mongo_deps) for _ in range(3)] == ["sent", "duplicate",
                                                                   "duplicate"]
    [receipt] = mails(tmp_path / "mail")
    assert receipt["Subject"] == "Receipt for invoice INV-2024-0007: payment received"


async def test_a_tenant_with_notifications_off_gets_nothing(mongo_deps: NotifierDeps,
                                                           tmp_path: Path) -> None:
    assert await notify(issued_event(notifications=False), mongo_deps) == "skipped"
    assert await notify(status_event("failed", notifications=False), mongo_deps) == "skipped"
    assert mails(tmp_path / "mail") == []
    assert await mongo_deps.store.status("inv-1:invoice_issued") == "skipped"


async def test_emails_use_the_contact_settings_in_force_when_they_are_sent(
    common_settings: Any, tmp_path: Path
) -> None:
    sink = start_sink(tmp_path / "mail")
    settings = notifier_settings(sink.port)
    client = make_client(settings)
    contacts = client[settings.mongo_db]["notifier_contacts"]
    moved = BillingConfigApplied(
        tenant_id="acme", config_version=2, submitted_at=datetime(2024, 3, 2, tzinfo=UTC),
        billing_email="ap@acme.example", email_notifications=True)
    silenced = BillingConfigApplied(
        tenant_id="globex", config_version=2, submitted_at=datetime(2024, 3, 2, tzinfo=UTC),
        billing_email="billing@globex.example", email_notifications=False)
    try:
        async with running_notifier(settings) as broker:
            await publish_event(broker, settings, moved, TOPIC_TENANT, "acme")
            await publish_event(broker, settings, silenced, TOPIC_TENANT, "globex")
            await eventually(lambda: _count_is(contacts, 2), what="both tenants projected")
            # Both invoices were issued under configuration 1, with the old contact settings.
            await publish(broker, settings, status_event("failed", config_version=1))
            await publish_event(broker, settings, status_event(
                "failed", "inv-9", tenant_id="globex", email="billing@globex.example",
                config_version=1), TOPIC_INVOICE, "globex")
            await publish(broker, settings, status_event("overdue", config_version=1))
            sent = client[settings.mongo_db]["notifier_sent"]
            await eventually(lambda: _count_is(sent, 3), what="three decisions")
            await eventually(lambda: len(mails(tmp_path / "mail")) >= 2, what="two emails")
            skipped = await sent.find_one({"_id": "inv-9:payment_failed"})
            assert skipped is not None and skipped["status"] == "skipped"
    finally:
        sink.stop()
        await client.close()
    received = mails(tmp_path / "mail")
    assert sorted((m["X-Billing-Notification"], m["To"]) for m in received) == [
        ("inv-1:overdue", "ap@acme.example"), ("inv-1:payment_failed", "ap@acme.example")]


async def _count_is(collection: Any, want: int) -> bool:
    return bool(await collection.count_documents({}) == want)


async def test_the_mongodb_contact_projection_only_moves_to_newer_versions(
    mongo_deps: NotifierDeps,
) -> None:
    def applied(version: int) -> BillingConfigApplied:
        return BillingConfigApplied(
            tenant_id="acme", config_version=version, email_notifications=version != 2,
            submitted_at=datetime(2024, 3, version, tzinfo=UTC),
            billing_email=f"v{version}@acme.example")

    store = mongo_deps.store
    assert [await store.record_contact(applied(v)) for v in (1, 3, 2, 3)] == [
        True, True, False, False]
    contact = await store.contact("acme")
    assert contact is not None
    assert (contact.version, contact.billing_email, contact.email_notifications) == (
        3, "v3@acme.example", True)
    assert await store.contact("globex") is None
