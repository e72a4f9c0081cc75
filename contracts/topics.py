"""Kafka topic names. The message key on every topic is the tenant id (UTF-8), so one tenant's
events stay in order on one partition (docs/design.md#flow)."""

from typing import Final

TOPIC_USAGE: Final = "billing.usage.v1"
TOPIC_TENANT_CONFIG: Final = "billing.tenant-config.v1"
TOPIC_INVOICE: Final = "billing.invoice.v1"
TOPIC_PAYMENT: Final = "billing.payment.v1"
TOPIC_STRIPE_EVENTS: Final = "billing.stripe-events.v1"
TOPIC_NOTIFICATION: Final = "billing.notification.v1"
TOPIC_DEAD_LETTER: Final = "billing.dead-letter.v1"
#: Facts about tenants other services project: `BillingConfigApplied`, `SubscriptionChanged`,
#: `UsageLimitsChanged`.
TOPIC_TENANT: Final = "billing.tenant.v1"
#: `UsageThresholdReached`: a tenant's usage reached 80 % or 100 % of a plan limit.
TOPIC_USAGE_ALERTS: Final = "billing.usage-alerts.v1"

#: Topic -> default partition count used when the platform creates its topics.
ALL_TOPICS: Final[dict[str, int]] = {
    TOPIC_USAGE: 8,
    TOPIC_TENANT_CONFIG: 4,
    TOPIC_INVOICE: 4,
    TOPIC_PAYMENT: 4,
    TOPIC_STRIPE_EVENTS: 4,
    TOPIC_NOTIFICATION: 4,
    TOPIC_DEAD_LETTER: 1,
    TOPIC_TENANT: 4,
    TOPIC_USAGE_ALERTS: 4,
}
