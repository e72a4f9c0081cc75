"""The demo waits on every consumer group and outbox the services declare in their api."""

import pytest

from contracts import (
    TOPIC_INVOICE,
    TOPIC_PAYMENT,
    TOPIC_STRIPE_EVENTS,
    TOPIC_TENANT,
    TOPIC_TENANT_CONFIG,
    TOPIC_USAGE,
    TOPIC_USAGE_ALERTS,
)
from services.common.outbox import outbox_collection
from services.common.settings import CommonSettings
from services.demo.settle import OUTBOXES, default_subscriptions

pytestmark = pytest.mark.unit


def test_every_worker_group_is_watched_on_the_topics_it_reads() -> None:
    assert default_subscriptions(CommonSettings(topic_prefix="t1.")) == {
        "t1.usage-collector": [TOPIC_USAGE],
        "t1.usage-collector-limits": [TOPIC_TENANT],
        "t1.invoicer": [TOPIC_TENANT_CONFIG, TOPIC_PAYMENT],
        "t1.payments": [TOPIC_INVOICE, TOPIC_STRIPE_EVENTS],
        "t1.notifier": [TOPIC_INVOICE, TOPIC_TENANT, TOPIC_USAGE_ALERTS],
    }


def test_every_outbox_is_watched_once() -> None:
    assert sorted(OUTBOXES) == sorted(
        outbox_collection(service)
        for service in ("usage_collector", "invoicer", "payments", "notifier")
    )
