"""Every event and command of the platform, importable from one place (how they are versioned
and carried: docs/design.md#contracts)."""

from contracts.base import Contract, Event
from contracts.commands import CouponCreated, CouponRedeemed, CreditGranted
from contracts.config import (
    Actor,
    BillingConfigApplied,
    BillingConfigSubmitted,
    BillingSettings,
    Coupon,
    Credit,
    PriceCharge,
    PricePlan,
    PriceTier,
)
from contracts.invoices import InvoiceIssued, InvoiceStatusChanged, LineItem
from contracts.notifications import DeadLettered, NotificationFailed, NotificationSent
from contracts.payments import (
    PaymentDuplicated,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    StripeEventReceived,
)
from contracts.plans import (
    Plan,
    PlanLimit,
    PlanSubmitted,
    SubscriptionChanged,
    SubscriptionCheckoutCompleted,
    SubscriptionRequested,
    UsageLimitsChanged,
    UsageLimitWindow,
    UsageThresholdReached,
)
from contracts.topics import (
    TOPIC_DEAD_LETTER,
    TOPIC_INVOICE,
    TOPIC_NOTIFICATION,
    TOPIC_PAYMENT,
    TOPIC_STRIPE_EVENTS,
    TOPIC_TENANT,
    TOPIC_TENANT_CONFIG,
    TOPIC_USAGE,
    TOPIC_USAGE_ALERTS,
)
from contracts.usage import UsageData, UsageRecorded

#: Event class -> the topic it is published on.
ALL_EVENTS: dict[type[Contract], str] = {
    UsageRecorded: TOPIC_USAGE,
    BillingConfigSubmitted: TOPIC_TENANT_CONFIG,
    InvoiceIssued: TOPIC_INVOICE,
    InvoiceStatusChanged: TOPIC_INVOICE,
    PaymentSucceeded: TOPIC_PAYMENT,
    PaymentFailed: TOPIC_PAYMENT,
    StripeEventReceived: TOPIC_STRIPE_EVENTS,
    NotificationSent: TOPIC_NOTIFICATION,
    NotificationFailed: TOPIC_NOTIFICATION,
    DeadLettered: TOPIC_DEAD_LETTER,
    PaymentDuplicated: TOPIC_PAYMENT,
    PaymentRefunded: TOPIC_PAYMENT,
    BillingConfigApplied: TOPIC_TENANT,
    CreditGranted: TOPIC_TENANT_CONFIG,
    CouponCreated: TOPIC_TENANT_CONFIG,
    CouponRedeemed: TOPIC_TENANT_CONFIG,
    PlanSubmitted: TOPIC_TENANT_CONFIG,
    SubscriptionRequested: TOPIC_TENANT_CONFIG,
    SubscriptionCheckoutCompleted: TOPIC_PAYMENT,
    SubscriptionChanged: TOPIC_TENANT,
    UsageLimitsChanged: TOPIC_TENANT,
    UsageThresholdReached: TOPIC_USAGE_ALERTS,
}

__all__ = [
    "ALL_EVENTS",
    "Actor",
    "BillingConfigSubmitted",
    "BillingSettings",
    "Contract",
    "Coupon",
    "Credit",
    "DeadLettered",
    "Event",
    "InvoiceIssued",
    "InvoiceStatusChanged",
    "LineItem",
    "NotificationFailed",
    "NotificationSent",
    "PaymentFailed",
    "PaymentSucceeded",
    "PriceCharge",
    "PricePlan",
    "PriceTier",
    "StripeEventReceived",
    "UsageData",
    "UsageRecorded",
    "PaymentDuplicated",
    "PaymentRefunded",
    "BillingConfigApplied",
    "CouponCreated",
    "CouponRedeemed",
    "CreditGranted",
    "Plan",
    "PlanLimit",
    "PlanSubmitted",
    "SubscriptionChanged",
    "SubscriptionCheckoutCompleted",
    "SubscriptionRequested",
    "UsageLimitWindow",
    "UsageLimitsChanged",
    "UsageThresholdReached",
]
