"""Prometheus metrics of the payments service (`billing_payments_` prefix)."""

from prometheus_client import Counter, Histogram

ATTEMPTS = Counter(
    "billing_payments_attempts_total", "Charge attempts made through Stripe.", ["kind"]
)
OUTCOMES = Counter(
    "billing_payments_outcomes_total",
    "Payment outcomes published (succeeded, failed, zero_amount, manual).", ["outcome"],
)
STRIPE_LATENCY = Histogram(
    "billing_payments_stripe_request_duration_seconds",
    "Duration of Stripe API calls, retries included.", ["operation"],
)
STRIPE_ERRORS = Counter(
    "billing_payments_stripe_errors_total",
    "Stripe API errors by operation and kind (transient, card, rejected).", ["operation", "kind"],
)
WEBHOOKS = Counter(
    "billing_payments_webhooks_total",
    "Stripe webhook requests by result (accepted, bad_signature, publish_failed).", ["result"],
)
STRIPE_EVENTS = Counter(
    "billing_payments_stripe_events_total",
    "Verified Stripe events reconciled, by type and decision.", ["type", "decision"],
)
WEBHOOK_MISMATCHES = Counter(
    "billing_payments_webhook_mismatches_total",
    "Stripe events not applied because the re-read PaymentIntent does not match the invoice "
    "(invoice, amount, currency).", ["reason"],
)
PARKED_EVENTS = Counter(
    "billing_payments_parked_events_total",
    "Stripe events kept because their invoice was not known yet.",
)
REFUNDS = Counter(
    "billing_payments_refunds_total",
    "Stripe refunds recorded (invoice: of the invoice's payment; duplicate: of a duplicate).",
    ["kind"],
)
