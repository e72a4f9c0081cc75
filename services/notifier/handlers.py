"""The notifier's use case: email a tenant about one invoice event, at most once per
(invoice, kind).

Sequence for an event that calls for an email (`notify`):
0. Contact settings: the newer of the event's own and the tenant's projected ones
   (`record_config_applied` keeps the projection; `domain.contact_in_force`).
1. `notifier_sent` already final (`sent`, `failed`, `skipped`) -> nothing (a redelivery, or a
   second event of the same kind).
2. Notifications off in the event -> record `skipped`, send nothing.
3. Claim: record `sending` (with the deterministic Message-ID) BEFORE the SMTP conversation.
4. SMTP, with bounded in-process retries on temporary failures; still failing -> raise
   `TemporaryMailError`: the consumer runtime retries the message in place with back-off
   (offset not committed until it passes), never dropped.
5. Accepted -> `sent` + `NotificationSent` in one transaction (outbox). Refused with a 5xx ->
   `failed` + `NotificationFailed` + a `DeadLettered` record in one transaction.

The window that remains: a crash (or lost connection to MongoDB) after the SMTP server answered
250 to DATA and before step 5 commits leaves the record in `sending`; the redelivered event
sends the email again with the SAME Message-ID (receivers and the sink can collapse it). SMTP
offers no way to ask the server "did you accept this already?", so this window (one round trip
to MongoDB) is as small as the protocol allows; claiming first makes the crash visible in
`notifier_sent` (`attempts` > 1).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

from contracts import (
    TOPIC_DEAD_LETTER,
    TOPIC_NOTIFICATION,
    BillingConfigApplied,
    NotificationFailed,
    NotificationSent,
)
from services.common.deadletter import (
    NOT_FROM_KAFKA,
    DeadLetter,
    MessageSource,
    count_dead_letter,
    dead_letter_event,
)
from services.common.invoice_document import seller_of
from services.notifier.adapters.mailer import Mailer, PermanentMailError, TemporaryMailError
from services.notifier.adapters.store import FINAL, NotificationStore
from services.notifier.domain import (
    InvoiceEvent,
    NotificationRequest,
    backoff_seconds,
    notification_for,
)
from services.notifier.messages import compose_email
from services.notifier.metrics import FAILED, RETRIED, SENT, SKIPPED
from services.notifier.names import SERVICE
from services.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)
Outcome = Literal["ignored", "duplicate", "skipped", "sent", "failed"]


@dataclass
class NotifierDeps:
    """What `notify` needs; built once at start-up (`sleep` is replaceable in tests)."""

    store: NotificationStore
    mailer: Mailer
    settings: NotifierSettings
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)


async def notify(
    event: InvoiceEvent, deps: NotifierDeps, source: MessageSource = NOT_FROM_KAFKA
) -> Outcome:
    """Send the email `event` calls for, once; returns what happened.

    Idempotent per (invoice, kind). Raises `TemporaryMailError` when the SMTP server stayed
    unavailable through `smtp_retry_attempts` tries and `DependencyUnavailable` when MongoDB
    is unavailable (both retryable: the runtime tries the message again).
    """
    request = notification_for(event, await deps.store.contact(event.tenant_id))
    if request is None:
        return "ignored"
    nid = request.notification_id
    if await deps.store.status(nid) in FINAL:
        return "duplicate"
    if not request.send:
        await deps.store.record_skipped(request, "notifications_off")
        SKIPPED.labels(kind=request.kind).inc()
        return "skipped"
    s = deps.settings
    message = compose_email(
        request, sender=s.smtp_from, locale=s.email_locale,
        pay_link_template=s.pay_link_template, seller_name=s.seller_name, seller=seller_of(s),
    )
    mid = str(message["Message-ID"])
    await deps.store.claim(request, mid)
    try:
        await _send_with_retries(deps, request, message)
    except PermanentMailError as exc:
        await _report_failure(deps, request, source, exc)
        return "failed"
    sent = NotificationSent(
        event_id=f"{nid}:sent", notification_id=nid, kind=request.kind,
        tenant_id=request.tenant_id, invoice_id=request.invoice_id,
        invoice_number=request.invoice_number, recipient=request.recipient,
        subject=request.subject, message_id=mid,
    )
    await deps.store.finish(nid, "sent", [(sent, TOPIC_NOTIFICATION, request.tenant_id)])
    SENT.labels(kind=request.kind).inc()
    return "sent"


async def record_config_applied(event: BillingConfigApplied, deps: NotifierDeps) -> bool:
    """Project a tenant's accepted configuration into the notifier's contact settings
    (`notifier_contacts`); an event older than the projection changes nothing. Idempotent;
    returns True when the projection changed."""
    changed = await deps.store.record_contact(event)
    if changed:
        log.info("contact settings of tenant %s now from configuration version %d",
                 event.tenant_id, event.config_version, extra={"tenant_id": event.tenant_id})
    return changed


async def _send_with_retries(
    deps: NotifierDeps, request: NotificationRequest, message: EmailMessage
) -> None:
    s = deps.settings
    for attempt in range(1, s.smtp_retry_attempts + 1):
        try:
            await deps.mailer.send(message)
            return
        except TemporaryMailError as exc:
            if attempt == s.smtp_retry_attempts:
                raise
            delay = backoff_seconds(attempt, s.smtp_retry_base_seconds, s.smtp_retry_max_seconds)
            RETRIED.labels(kind=request.kind).inc()
            log.warning("temporary SMTP failure for %s (attempt %d), retrying in %.1fs: %s",
                        request.notification_id, attempt, delay, exc)
            await deps.sleep(delay)


async def _report_failure(
    deps: NotifierDeps, request: NotificationRequest, source: MessageSource,
    exc: PermanentMailError,
) -> None:
    nid = request.notification_id
    failed = NotificationFailed(
        event_id=f"{nid}:failed", notification_id=nid, kind=request.kind,
        tenant_id=request.tenant_id, invoice_id=request.invoice_id,
        invoice_number=request.invoice_number, recipient=request.recipient, reason=str(exc),
    )
    dead = DeadLetter(source, exc.reason, f"{nid}: {exc.detail}")
    letter = dead_letter_event(SERVICE, dead)
    await deps.store.finish(
        nid, "failed",
        [(failed, TOPIC_NOTIFICATION, request.tenant_id),
         (letter, TOPIC_DEAD_LETTER, request.tenant_id)],
        reason=str(exc),
    )
    FAILED.labels(kind=request.kind).inc()
    count_dead_letter(SERVICE, dead)
    log.warning("permanent SMTP refusal for %s: %s", nid, exc)
