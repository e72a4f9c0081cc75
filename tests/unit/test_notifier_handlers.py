"""`notify` against the in-memory store and mailer: once per (invoice, kind), retries,
permanent refusals."""

from datetime import UTC, datetime

import pytest

from contracts import BillingConfigApplied, DeadLettered, NotificationFailed, NotificationSent
from services.common.deadletter import MessageSource
from services.notifier.adapters.mailer import (
    InMemoryMailer,
    PermanentMailError,
    TemporaryMailError,
)
from services.notifier.adapters.store import InMemoryNotificationStore
from services.notifier.handlers import NotifierDeps, notify, record_config_applied
from services.notifier.settings import NotifierSettings
from tests.unit.test_notifier_domain import issued_event, status_event

pytestmark = pytest.mark.unit


def make_deps(mailer: InMemoryMailer | None = None) -> tuple[NotifierDeps, list[float]]:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    settings = NotifierSettings(smtp_retry_attempts=3, smtp_retry_base_seconds=0.5)
    deps = NotifierDeps(InMemoryNotificationStore(), mailer or InMemoryMailer(), settings, sleep)
    return deps, delays


async def test_an_issued_invoice_is_emailed_once_and_reported_sent() -> None:
    deps, _ = make_deps()
    event = issued_event()
    assert await notify(event, deps) == "sent"
    assert await notify(event, deps) == "duplicate"
    assert await notify(issued_event(), deps) == "duplicate"  # same invoice, new event id
    mailer, store = deps.mailer, deps.store
    assert isinstance(mailer, InMemoryMailer) and isinstance(store, InMemoryNotificationStore)
    assert len(mailer.sent) == 1
    [(sent, topic, key)] = store.outbox
    assert isinstance(sent, NotificationSent)
    assert (topic, key, sent.kind, sent.recipient) == (
        "billing.notification.v1", "acme", "invoice_issued", "billing@acme.example"
    )
    assert sent.message_id == mailer.sent[0]["Message-ID"]


async def test_a_tenant_with_notifications_off_gets_nothing_but_the_event_is_recorded() -> None:
    deps, _ = make_deps()
    assert await notify(status_event("overdue", notifications=False), deps) == "skipped"
    assert await notify(status_event("overdue"), deps) == "duplicate"
    assert deps.mailer.sent == []  # type: ignore[attr-defined]
    assert deps.store.records["inv-1:overdue"]["status"] == "skipped"  # type: ignore[attr-defined]


async def test_temporary_failures_are_retried_with_back_off_until_sent() -> None:
    mailer = InMemoryMailer(
        failures=[TemporaryMailError("421 busy"), TemporaryMailError("connection refused")]
    )
    deps, delays = make_deps(mailer)
    assert await notify(status_event("failed"), deps) == "sent"
    assert delays == [0.5, 1.0]
    assert len(mailer.sent) == 1


async def test_a_server_down_through_every_retry_hands_the_event_back_and_later_sends_once(
) -> None:
    mailer = InMemoryMailer(failures=[TemporaryMailError("down")] * 3)
    deps, _ = make_deps(mailer)
    with pytest.raises(TemporaryMailError):
        await notify(status_event("paid"), deps)
    assert deps.store.records["inv-1:receipt"]["status"] == "sending"  # type: ignore[attr-defined]
    assert await notify(status_event("paid"), deps) == "sent"
    assert len(mailer.sent) == 1
    assert deps.store.records["inv-1:receipt"]["attempts"] == 2  # type: ignore[attr-defined]


async def test_a_permanent_refusal_is_reported_and_dead_lettered_not_retried() -> None:
    mailer = InMemoryMailer(failures=[PermanentMailError(550, "mailbox unavailable")])
    deps, delays = make_deps(mailer)
    source = MessageSource("t.billing.invoice.v1", 2, 41, b"acme", b"{}")
    assert await notify(status_event("overdue"), deps, source) == "failed"
    assert await notify(status_event("overdue"), deps, source) == "duplicate"
    assert delays == [] and mailer.sent == []
    store = deps.store
    assert isinstance(store, InMemoryNotificationStore)
    [(failed, _, _), (letter, topic, _)] = store.outbox
    assert isinstance(failed, NotificationFailed) and "550" in failed.reason
    assert isinstance(letter, DeadLettered) and topic == "billing.dead-letter.v1"
    assert (letter.reason, letter.partition, letter.offset) == ("smtp_permanent_failure", 2, 41)


async def test_a_crash_after_claiming_resends_with_the_same_message_id() -> None:
    deps, _ = make_deps()
    store = deps.store
    assert isinstance(store, InMemoryNotificationStore)

    class Crash(Exception):
        pass

    async def crash(*_: object, **__: object) -> None:
        raise Crash

    finish, store.finish = store.finish, crash  # type: ignore[method-assign]
    with pytest.raises(Crash):
        await notify(issued_event(), deps)
    store.finish = finish  # type: ignore[method-assign]
    assert await notify(issued_event(), deps) == "sent"
    first, second = deps.mailer.sent  # type: ignore[attr-defined]
    assert first["Message-ID"] == second["Message-ID"]


def config_applied(version: int, email: str = "billing@acme.example",
                   notifications: bool = True) -> BillingConfigApplied:
    """The invoicer's `BillingConfigApplied` for tenant `acme`'s configuration `version`."""
    return BillingConfigApplied(
        tenant_id="acme", config_version=version, submitted_at=datetime(2024, 3, version,
                                                                        tzinfo=UTC),
        billing_email=email, email_notifications=notifications,
    )


async def test_a_tenant_who_turned_notifications_off_gets_no_more_emails() -> None:
    deps, _ = make_deps()
    await deps.store.record_contact(config_applied(2, notifications=False))
    assert await notify(status_event("failed", config_version=1), deps) == "skipped"
    assert await notify(status_event("overdue"), deps) == "skipped"  # from before versions
    assert deps.mailer.sent == []  # type: ignore[attr-defined]


async def test_emails_go_to_the_billing_email_of_the_newer_configuration() -> None:
    deps, _ = make_deps()
    await deps.store.record_contact(config_applied(2, email="new@acme.example"))
    assert await notify(issued_event(email="old@acme.example"), deps) == "sent"
    [message] = deps.mailer.sent  # type: ignore[attr-defined]
    assert message["To"] == "new@acme.example"
    [(sent, _, _)] = deps.store.outbox  # type: ignore[attr-defined]
    assert sent.recipient == "new@acme.example"  # type: ignore[attr-defined]


async def test_an_event_from_a_newer_configuration_than_the_projection_keeps_its_contacts(
) -> None:
    deps, _ = make_deps()
    await deps.store.record_contact(config_applied(1, email="old@acme.example"))
    event = status_event("paid", email="newer@acme.example", config_version=2)
    assert await notify(event, deps) == "sent"
    assert deps.mailer.sent[0]["To"] == "newer@acme.example"  # type: ignore[attr-defined]


async def test_the_contact_projection_only_moves_to_newer_configuration_versions() -> None:
    deps, _ = make_deps()
    assert await record_config_applied(config_applied(3, email="v3@acme.example"), deps)
    assert not await record_config_applied(config_applied(2, email="v2@acme.example"), deps)
    assert not await record_config_applied(config_applied(3, email="v3@acme.example"), deps)
    contact = await deps.store.contact("acme")
    assert contact is not None and (contact.version, contact.billing_email) == (
        3, "v3@acme.example")
    assert await deps.store.contact("globex") is None
