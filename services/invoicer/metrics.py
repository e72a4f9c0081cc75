"""Invoicer metrics (`billing_` prefix), counted at the edge where commands are refused and
where the invoice run issues."""

from prometheus_client import Counter, Histogram

CONFIG_REFUSALS = Counter(
    "billing_config_commands_refused_total",
    "Configuration commands refused by the invoicer, by cause: unsigned, bad_signature, "
    "forbidden (role), validation_error, superseded.",
    ["cause"],
)

CYCLE_SECONDS = Histogram(
    "billing_invoicer_cycle_seconds",
    "Wall time of one billing cycle run (subscriptions rolled, due invoices issued, overdue "
    "marked).",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
ISSUE_BATCH_SIZE = Histogram(
    "billing_invoicer_issue_batch_size",
    "Invoices issued by one batch transaction of the invoice run.",
    buckets=(1, 5, 10, 25, 50, 100, 200, 400, 800),
)
