"""Notifier metrics (`billing_` prefix), counted at the edges by the handler, by kind."""

from prometheus_client import Counter

SENT = Counter(
    "billing_notifications_sent_total", "Emails accepted by the SMTP server, by kind.", ["kind"]
)
FAILED = Counter(
    "billing_notifications_failed_total",
    "Emails refused permanently (5xx) and reported with NotificationFailed, by kind.",
    ["kind"],
)
RETRIED = Counter(
    "billing_notification_retries_total",
    "SMTP attempts retried after a temporary failure (4xx, connection refused), by kind.",
    ["kind"],
)
SKIPPED = Counter(
    "billing_notifications_skipped_total",
    "Emails not sent because the tenant had notifications off, by kind.",
    ["kind"],
)
