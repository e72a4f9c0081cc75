"""Poison messages (`services.devstack.poison`): each is refused by the code that reads its
topic with the reason it names."""

import pytest

from contracts import (
    TOPIC_INVOICE,
    TOPIC_PAYMENT,
    TOPIC_STRIPE_EVENTS,
    TOPIC_TENANT,
    TOPIC_TENANT_CONFIG,
    TOPIC_USAGE,
    BillingConfigApplied,
    BillingConfigSubmitted,
    InvoiceIssued,
    InvoiceStatusChanged,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    StripeEventReceived,
)
from contracts.base import Contract
from services.common.codec import decode
from services.common.errors import InvalidMessage
from services.devstack.api import Poison, poison_messages
from services.invoicer.api import CONSUMES as INVOICER
from services.notifier.api import CONSUMES as NOTIFIER
from services.payments.api import CONSUMES as PAYMENTS
from services.usage_collector.acceptance import Rejected
from services.usage_collector.api import CONSUMES as COLLECTOR
from services.usage_collector.wire import Decoder

#: What each consumer of a topic accepts (one entry per consumer).
ACCEPTED: dict[str, list[list[type[Contract]]]] = {
    TOPIC_TENANT_CONFIG: [[BillingConfigSubmitted]],
    TOPIC_PAYMENT: [[PaymentSucceeded, PaymentFailed, PaymentRefunded]],
    TOPIC_INVOICE: [[InvoiceIssued], [InvoiceIssued, InvoiceStatusChanged]],
    TOPIC_STRIPE_EVENTS: [[StripeEventReceived]],
    TOPIC_TENANT: [[BillingConfigApplied]],
}
#: Reasons only the handler can give: the message itself is a valid contract.
HANDLER_REASONS = {"forbidden", "unknown_invoice"}


def test_every_consumed_topic_has_poison() -> None:
    consumed = {topic for topic, _ in (*INVOICER, *NOTIFIER, *PAYMENTS, *COLLECTOR)}
    assert consumed == {p.topic for p in poison_messages()}
    assert len({p.reason for p in poison_messages()}) >= 5


@pytest.mark.parametrize("poison", poison_messages(), ids=lambda p: f"{p.topic}-{p.reason}")
def test_each_poison_message_is_refused_with_its_reason(poison: Poison) -> None:
    if poison.topic == TOPIC_USAGE:
        with pytest.raises(Rejected) as rejected:
            Decoder().decode(poison.value)
        assert rejected.value.reason == poison.reason
        return
    for accept in ACCEPTED[poison.topic]:
        if poison.reason in HANDLER_REASONS:
            assert decode(poison.value, poison.headers, accept) is not None
            continue
        with pytest.raises(InvalidMessage) as invalid:
            decode(poison.value, poison.headers, accept)
        assert invalid.value.reason == poison.reason
