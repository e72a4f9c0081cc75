"""The notifier's usage alert emails (`UsageThresholdReached`, docs/limits.md): one email per
event to the tenant's billing contact, none when its notifications are off."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from contracts import TOPIC_TENANT, TOPIC_USAGE_ALERTS, BillingConfigApplied
from contracts.plans import UsageThresholdReached, threshold_event_id
from services.common.mongo import make_client
from services.common.worker import publish_event
from services.devstack.smtp_sink import start_sink
from services.notifier.handlers import NotifierDeps
from services.notifier.usage_alerts import notify_usage_alert
from tests.integration.test_notifier_smtp import (
    _count_is,
    mails,
    notifier_deps,
    notifier_settings,
    running_notifier,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
async def deps(common_settings: Any, tmp_path: Path) -> AsyncIterator[NotifierDeps]:
    async with notifier_deps(tmp_path / "mail") as found:
        yield found


def alert(threshold: int, tenant: str = "acme", hard: bool = True) -> UsageThresholdReached:
    return UsageThresholdReached(
        event_id=threshold_event_id(tenant, "computations", "2026-03-01T00:00:00Z", threshold),
        tenant_id=tenant, meter="computations", period_start=START, period_end=END,
        threshold_percent=threshold,  # type: ignore[arg-type]
        limit=Decimal(1000), used=Decimal(threshold * 10), hard=hard)


def contact(tenant: str, notifications: bool) -> BillingConfigApplied:
    return BillingConfigApplied(
        tenant_id=tenant, config_version=1, submitted_at=START,
        billing_email=f"billing@{tenant}.example", email_notifications=notifications)


async def test_an_alert_is_emailed_once_with_its_numbers_and_what_comes_at_the_limit(
    deps: NotifierDeps, tmp_path: Path,
) -> None:
    await deps.store.record_contact(contact("acme", True))
    assert [await notify_usage_alert(alert(80), deps) for _ in range(2)] == [
        "sent", "duplicate"]
    await deps.store.record_contact(contact("soft", True))
    assert await notify_usage_alert(alert(100, "soft", hard=False), deps) == "sent"
    hard, soft = mails(tmp_path / "mail")
    assert hard["Subject"] == "You have used 80 % of your Computations limit"
    assert hard["To"] == "billing@acme.example"
    text = hard.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "800 computations of 1000 computations (80 %)" in text
    assert "Mar 1, 2026 - Mar 31, 2026" in text
    assert "hard limit" in text and "refused" in text
    soft_text = soft.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "billed as overage" in soft_text


async def test_no_email_with_notifications_off_or_without_a_billing_contact(
    deps: NotifierDeps, tmp_path: Path,
) -> None:
    await deps.store.record_contact(contact("quiet", False))
    assert await notify_usage_alert(alert(80, "quiet"), deps) == "skipped"
    assert await notify_usage_alert(alert(80, "nobody"), deps) == "skipped"
    assert mails(tmp_path / "mail") == []
    assert await deps.store.status(f"{alert(80, 'quiet').event_id}:usage_alert") == (
        "skipped")


async def test_the_worker_emails_alerts_from_the_alerts_topic_once_each(
    common_settings: object, tmp_path: Path,
) -> None:
    sink = start_sink(tmp_path / "mail")
    settings = notifier_settings(sink.port)
    try:
        async with running_notifier(settings) as broker:
            await publish_event(broker, settings, contact("acme", True), TOPIC_TENANT, "acme")
            client = make_client(settings)
            contacts = client[settings.mongo_db]["notifier_contacts"]
            await eventually(lambda: _count_is(contacts, 1), what="the contact projected")
            for event in (alert(80), alert(80), alert(100)):
                await publish_event(broker, settings, event, TOPIC_USAGE_ALERTS, "acme")
            sent = client[settings.mongo_db]["notifier_sent"]

            async def both_sent() -> bool:
                return await sent.count_documents({"status": "sent"}) == 2

            await eventually(both_sent, what="two alerts sent")
            await client.close()
    finally:
        sink.stop()
    # same key, same partition: the repeated 80 % alert was handled before the 100 % one
    assert sorted(m["Subject"] for m in mails(tmp_path / "mail")) == [
        "You have used 100 % of your Computations limit",
        "You have used 80 % of your Computations limit"]
