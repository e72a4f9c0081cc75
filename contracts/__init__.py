"""Versioned event contracts and topic names shared by every billing service.

Downstream systems subscribe to these topics; `billing contracts export DIR` writes one JSON
Schema per event plus an AsyncAPI document describing them.
"""

from contracts.events import (
    ALL_EVENTS,
    Actor,
    BillingConfigSubmitted,
    BillingSettings,
    Coupon,
    Credit,
    DeadLettered,
    InvoiceIssued,
    InvoiceStatusChanged,
    LineItem,
    NotificationFailed,
    NotificationSent,
    PaymentFailed,
    PaymentSucceeded,
    PriceCharge,
    PricePlan,
    PriceTier,
    StripeEventReceived,
    UsageData,
    UsageRecorded,
)
from contracts.topics import (
    ALL_TOPICS,
    TOPIC_DEAD_LETTER,
    TOPIC_INVOICE,
    TOPIC_NOTIFICATION,
    TOPIC_PAYMENT,
    TOPIC_STRIPE_EVENTS,
    TOPIC_TENANT_CONFIG,
    TOPIC_USAGE,
)

__all__ = [
    "ALL_EVENTS",
    "ALL_TOPICS",
    "Actor",
    "BillingConfigSubmitted",
    "BillingSettings",
    "Coupon",
    "Credit",
    "DeadLettered",
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
    "TOPIC_DEAD_LETTER",
    "TOPIC_INVOICE",
    "TOPIC_NOTIFICATION",
    "TOPIC_PAYMENT",
    "TOPIC_STRIPE_EVENTS",
    "TOPIC_TENANT_CONFIG",
    "TOPIC_USAGE",
    "UsageData",
    "UsageRecorded",
]
