"""The notifier's usage alert: email the tenant's billing contact when its usage of a meter
reaches 80 % or 100 % of its plan's limit (`UsageThresholdReached`, docs/limits.md).

One email per event id (the collector publishes one event per tenant, meter, period and
threshold): the `notifier_sent` record `"{event_id}:usage_alert"` is claimed before the SMTP
conversation and finished after it, as for invoice emails (`handlers.notify`). The recipient
and `email_notifications` come from the tenant's contact projection (its billing
configuration); a tenant without one, or with notifications off, gets a `skipped` record.
"""

from datetime import timedelta
from decimal import Decimal
from email.message import EmailMessage
from email.utils import format_datetime

from babel.dates import format_date

from contracts.plans import UsageThresholdReached
from services.common.meters import meter_of
from services.notifier.adapters.mailer import PermanentMailError
from services.notifier.domain import message_id
from services.notifier.handlers import NotifierDeps, Outcome
from services.notifier.messages import environment
from services.notifier.metrics import FAILED, SENT, SKIPPED

KIND = "usage_alert"


def alert_subject(event: UsageThresholdReached) -> str:
    """E.g. "You have used 80 % of your Computations limit"."""
    return (f"You have used {event.threshold_percent} % of your "
            f"{meter_of(event.meter).name} limit")


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def compose_alert(event: UsageThresholdReached, recipient: str, *, sender: str,
                  locale: str = "en_US", seller_name: str = "Billing Platform") -> EmailMessage:
    """The alert email (text and HTML). Deterministic: Message-ID from the event id, Date
    from the event's `occurred_at`."""
    meter = meter_of(event.meter)
    last_day = (event.period_end - timedelta(microseconds=1)).date()
    context = {
        "subject": alert_subject(event), "tenant_id": event.tenant_id,
        "meter_name": meter.name, "unit": meter.unit, "used": _plain(event.used),
        "limit": _plain(event.limit), "hard": event.hard, "seller_name": seller_name,
        "percent": _plain((event.used * 100 / event.limit).quantize(Decimal("0.1"))),
        "period": (f"{format_date(event.period_start.date(), format='medium', locale=locale)}"
                   f" - {format_date(last_day, format='medium', locale=locale)}"),
    }
    env = environment()
    nid = f"{event.event_id}:{KIND}"
    message = EmailMessage()
    message["Subject"] = context["subject"]
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(event.occurred_at)
    message["Message-ID"] = message_id(nid, sender)
    message["X-Billing-Notification"] = nid
    message["X-Billing-Tenant"] = event.tenant_id
    message.set_content(env.get_template(f"{KIND}.txt.j2").render(context))
    message.add_alternative(env.get_template(f"{KIND}.html.j2").render(context), subtype="html")
    return message


async def notify_usage_alert(event: UsageThresholdReached, deps: NotifierDeps) -> Outcome:
    """Email `event` to the tenant's billing contact once; what happened. Raises
    `TemporaryMailError` / `DependencyUnavailable` (retryable) like `handlers.notify`; a
    permanent SMTP refusal is recorded `failed` (nothing more is tried)."""
    nid = f"{event.event_id}:{KIND}"
    if await deps.store.status(nid) in ("sent", "failed", "skipped"):
        return "duplicate"
    contact = await deps.store.contact(event.tenant_id)
    record = {"kind": KIND, "tenant_id": event.tenant_id, "meter": event.meter,
              "threshold_percent": event.threshold_percent, "source_event_id": event.event_id,
              "recipient": contact.billing_email if contact else None}
    if contact is None or not contact.email_notifications:
        reason = "no_contact" if contact is None else "notifications_off"
        await deps.store.skip_other(nid, record, reason)
        SKIPPED.labels(kind=KIND).inc()
        return "skipped"
    s = deps.settings
    message = compose_alert(event, contact.billing_email, sender=s.smtp_from,
                            locale=s.email_locale, seller_name=s.seller_name)
    await deps.store.claim_other(nid, record, str(message["Message-ID"]))
    try:
        await deps.mailer.send(message)
    except PermanentMailError as exc:
        await deps.store.finish(nid, "failed", [], reason=str(exc))
        FAILED.labels(kind=KIND).inc()
        return "failed"
    await deps.store.finish(nid, "sent", [])
    SENT.labels(kind=KIND).inc()
    return "sent"
