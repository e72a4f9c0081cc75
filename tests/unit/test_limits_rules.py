"""The limit rules without I/O: thresholds reached, and what the entitlement answers."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.usage_collector.adapters.limits import counter_id, rfc3339, windows_of
from services.usage_collector.limits import entitlement_of, reached

pytestmark = pytest.mark.unit
PERIOD = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


@pytest.mark.parametrize(("used", "want"), [
    ("0", []), ("799.999999999999", []), ("800", [80]), ("999.9", [80]), ("1000", [80, 100]),
    ("1300", [80, 100]),
])
def test_thresholds_are_reached_exactly_at_their_share_of_the_limit(
    used: str, want: list[int]
) -> None:
    assert reached(Decimal(used), Decimal(1000)) == want


@pytest.mark.parametrize(("used", "hard", "allowed", "remaining"), [
    ("0", True, True, "1000"), ("790", True, True, "210"), ("800", True, True, "200"),
    ("999.999", True, True, "0.001"), ("1000", True, False, "0"), ("1300", True, False, "0"),
    ("1000", False, True, "0"), ("1300", False, True, "0"),
])
def test_only_a_reached_hard_limit_refuses(
    used: str, hard: bool, allowed: bool, remaining: str
) -> None:
    got = entitlement_of("acme", "computations", Decimal(1000), hard, Decimal(used), PERIOD,
                         PERIOD[0])
    assert (got.allowed, got.remaining, got.hard) == (allowed, Decimal(remaining), hard)


def test_a_meter_without_limit_is_allowed_and_never_hard() -> None:
    got = entitlement_of("acme", "cpu_hours", None, True, Decimal(5), PERIOD, PERIOD[0])
    assert (got.limit, got.remaining, got.allowed, got.hard) == (None, None, True, False)


def test_stored_windows_and_counter_ids_use_utc_rfc3339() -> None:
    doc = {"windows": [{"start": PERIOD[0], "end": PERIOD[1], "limits": [
        {"meter": "computations", "limit": Decimal("1000"), "hard": True}]}]}
    [window] = windows_of(doc)
    assert window.limits == {"computations": (Decimal(1000), True)}
    assert window.contains(PERIOD[0]) and not window.contains(PERIOD[1])
    assert rfc3339(PERIOD[0]) == "2026-03-01T00:00:00Z"
    assert counter_id("acme", "computations", PERIOD[0]) == "acme|computations|2026-03-01T00:00:00Z"
    assert windows_of(None) == [] and windows_of({"seq": 3}) == []
