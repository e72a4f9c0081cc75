"""The billing schedule against MongoDB: configuration versions in force, schedule changes,
and the stub period a change produces."""

from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.settings import CommonSettings
from services.invoicer.handlers import apply_config
from services.invoicer.reports import list_invoices
from services.invoicer.schedule import run_cycle
from tests.integration.test_invoicer_support import config, open_store, utc

pytestmark = pytest.mark.integration


def submitted(at: datetime, tenant_id: str = "acme", **overrides: Any) -> Any:
    """A configuration command submitted (occurred) at `at`."""
    return config(tenant_id, occurred_at=at.isoformat(), **overrides)


def spans(docs: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    return [(d["period_start"].astimezone(UTC), d["period_end"].astimezone(UTC)) for d in docs]


async def test_a_billing_day_change_leaves_no_unbilled_gap_and_one_stub_period(
    common_settings: CommonSettings,
) -> None:
    async with open_store(common_settings) as store:
        await apply_config(store, submitted(utc(2013, 5, 20)))
        await run_cycle(store, utc(2013, 7, 1))
        # Mid-July the operator moves the billing day to the 15th: July stays a full period
        # (the version in force at its start), then one stub up to 15 August.
        await apply_config(store, submitted(utc(2013, 7, 10),
                                            settings={"billing_day_of_month": 15}))
        await run_cycle(store, utc(2013, 9, 16))

        got = spans(await list_invoices(store, "acme"))
        assert got == [
            (utc(2013, 6, 1), utc(2013, 7, 1)),
            (utc(2013, 7, 1), utc(2013, 8, 1)),
            (utc(2013, 8, 1), utc(2013, 8, 15)),
            (utc(2013, 8, 15), utc(2013, 9, 15)),
        ]
