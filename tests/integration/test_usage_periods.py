"""Billing periods that start at a local midnight on a :30 or :45 offset split the collector's
hour buckets exactly: every aggregation counts each event in the period of its own time."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.common.settings import CommonSettings
from services.usage_collector.query import UsageTotal, usage_totals
from tests.integration.test_usage_collector import collector, publish, usage, wait_consumed

pytestmark = pytest.mark.integration

KOLKATA = ZoneInfo("Asia/Kolkata")  # UTC+05:30
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
SECOND = timedelta(seconds=1)


def by_meter(totals: list[UsageTotal]) -> dict[str, tuple[Decimal, int]]:
    return {t.meter: (t.quantity, t.events) for t in totals}


def around(midnight: datetime, tenant: str, first: int) -> list[tuple[bytes | None, bytes]]:
    """Events of every aggregation on both sides of `midnight`, all in one UTC hour:
    before it 1 and 3 (at -16 min and -1 s), after it 10 and 2 (at 0 s and +14 min)."""
    before = [(midnight - timedelta(minutes=16), "1", "vm-a"), (midnight - SECOND, "3", "vm-b")]
    after = [(midnight, "10", "vm-b"), (midnight + timedelta(minutes=14), "2", "vm-c")]
    meters: list[tuple[str, dict[str, Any]]] = [
        ("cpu_hours", {}), ("computations", {}), ("storage_gb", {}),
        ("peak_rps", {"aggregation": "max"}), ("version", {"aggregation": "latest"}),
    ]
    messages, n = [], first
    for at, qty, vm in before + after:
        for meter, extra in meters:
            messages.append(usage(n, tenant=tenant, qty=qty, at=at, meter=meter, **extra))
            n += 1
        messages.append(usage(n, tenant=tenant, qty="1", at=at, meter="seats",
                              aggregation="unique_count", resource_id=vm))
        n += 1
    return messages


BEFORE = {"cpu_hours": (Decimal(4), 2), "computations": (Decimal(2), 2),
          "storage_gb": (Decimal(2), 2), "peak_rps": (Decimal(3), 2),
          "version": (Decimal(3), 2), "seats": (Decimal(2), 2)}
AFTER = {"cpu_hours": (Decimal(12), 2), "computations": (Decimal(2), 2),
         "storage_gb": (Decimal(6), 2), "peak_rps": (Decimal(10), 2),
         "version": (Decimal(2), 2), "seats": (Decimal(2), 2)}


async def test_events_just_before_and_after_local_midnight_land_in_their_own_period(
    common_settings: CommonSettings, mongo_db: Any
) -> None:
    kolkata = datetime(2013, 8, 1, tzinfo=KOLKATA)  # 2013-07-31T18:30Z
    kathmandu = datetime(2013, 8, 1, tzinfo=KATHMANDU)  # 2013-07-31T18:15Z
    messages = around(kolkata, "tata", 0) + around(kathmandu, "yeti", 1000)
    await publish(common_settings, messages)
    async with collector():
        await wait_consumed(mongo_db, len(messages))
    for tenant, zone, midnight in (("tata", KOLKATA, kolkata), ("yeti", KATHMANDU, kathmandu)):
        assert midnight.astimezone(UTC).minute in (15, 30), "the period starts inside an hour"
        july = await usage_totals(mongo_db, tenant, datetime(2013, 7, 1, tzinfo=zone), midnight)
        august = await usage_totals(mongo_db, tenant, midnight, datetime(2013, 9, 1, tzinfo=zone))
        assert by_meter(july) == BEFORE, tenant
        assert by_meter(august) == AFTER, tenant
        whole = await usage_totals(mongo_db, tenant, midnight - timedelta(days=1),
                                   midnight + timedelta(days=1))
        assert by_meter(whole)["cpu_hours"] == (Decimal(16), 4)
        assert by_meter(whole)["seats"] == (Decimal(3), 4)
