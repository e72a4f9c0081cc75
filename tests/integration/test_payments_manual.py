"""A manual payment's `--paid-on` date is a date in the tenant's time zone."""

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.payments import handlers
from services.payments.handlers import Deps
from tests.support.stripe_fake import *  # noqa: F403 (fixtures)
from tests.support.stripe_fake import issued_invoice, outbox_events

pytestmark = pytest.mark.integration
LOS_ANGELES = ZoneInfo("America/Los_Angeles")


async def test_a_manual_payment_date_is_the_same_day_for_a_tenant_in_los_angeles(
    payments_deps: Deps, mongo_db: Any
) -> None:
    invoice = issued_invoice(tenant="initech").model_copy(
        update={"timezone": "America/Los_Angeles"})
    assert await handlers.handle_invoice_issued(invoice, payments_deps) == "awaiting_payment"
    await handlers.record_manual(invoice.invoice_number, "ach", "ACH-LA", date(2013, 8, 20),
                                 payments_deps)
    [paid] = await outbox_events(mongo_db)
    assert paid.paid_at.astimezone(LOS_ANGELES).date() == date(2013, 8, 20)
    assert paid.paid_at == datetime(2013, 8, 20, 7, tzinfo=UTC)  # midnight PDT
