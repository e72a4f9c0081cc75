"""Subscriptions through the invoicer worker over Kafka: a signed `SubscriptionRequested` on
`billing.tenant-config.v1` and the payments service's `SubscriptionCheckoutCompleted` on
`billing.payment.v1` (published twice) each start one subscription, and its facts reach
`billing.tenant.v1` through the outbox."""

import pytest

from contracts import TOPIC_PAYMENT, TOPIC_TENANT_CONFIG
from services.common.signing import sign
from services.common.worker import make_broker, publish_event
from services.invoicer.adapters.subscriptions import subscription_of
from services.invoicer.names import OUTBOX
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_invoicer_support import (  # the settings and worker fixtures
    open_store,
    utc,
    worker_fixture,  # noqa: F401
    worker_settings_fixture,  # noqa: F401
)
from tests.integration.test_subscriptions_support import PRO, add_plans, completed, request
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("worker")
async def test_the_worker_starts_subscriptions_from_both_topics_once(
    settings: InvoicerSettings,
) -> None:
    async with open_store(settings) as store:
        await add_plans(store, PRO)
        command = sign(request("start", utc(2026, 4, 1), "pro"), settings.signing_key())
        paid = completed(utc(2026, 4, 2), "pro", tenant="beta")
        async with make_broker(settings, name="test") as broker:
            await publish_event(broker, settings, command, TOPIC_TENANT_CONFIG, "acme")
            for _ in range(2):
                await publish_event(broker, settings, paid, TOPIC_PAYMENT, "beta")
            # same key, same partition: once gamma is subscribed, the duplicate was consumed
            after = completed(utc(2026, 4, 2), "pro", tenant="gamma")
            await publish_event(broker, settings, after, TOPIC_PAYMENT, "beta")
        for tenant in ("acme", "beta", "gamma"):
            view = await eventually(lambda t=tenant: subscription_of(store.db, t),
                                    what=f"{tenant}'s subscription", seconds=60)
            assert (view.status, view.plan_code) == ("active", "pro")
        async def all_published() -> bool:
            return await store.db[OUTBOX].count_documents(
                {"type": "SubscriptionChanged", "published": True}) == 3

        await eventually(all_published, what="three SubscriptionChanged published", seconds=60)
        beta = await store.db[OUTBOX].count_documents(
            {"type": "SubscriptionChanged", "key": "beta"})
        assert beta == 1
