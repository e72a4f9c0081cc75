"""The read side adds quantities exactly (34 significant digits, never the 28-digit default)
and refuses to round a sum it cannot hold."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.usage_collector.totals import Part, UsageSumOverflow, combine, parts_in

pytestmark = pytest.mark.unit

T = datetime(2013, 7, 1, tzinfo=UTC)


def parts(*sums: str) -> list[Part]:
    return [Part(T, Decimal(s), 1, Decimal(s), Decimal(s), T) for s in sums]


def test_a_sum_of_more_than_28_significant_digits_is_exact() -> None:
    total = combine("sum", parts("123456789012345678.123456789012", "1.000000000001"), 0)
    assert str(total) == "123456789012345679.123456789013"


def test_an_average_keeps_the_exact_sum_before_dividing() -> None:
    total = combine("avg", parts("123456789012345678.123456789012", "0.000000000002"), 0)
    assert total == Decimal("61728394506172839.061728394507")


def test_a_sum_beyond_34_significant_digits_raises_instead_of_rounding() -> None:
    with pytest.raises(UsageSumOverflow) as caught:
        combine("sum", parts("9999999999999999999999.999999999999", "0.000000000002"), 0)
    assert caught.value.operands == (
        Decimal("9999999999999999999999.999999999999"), Decimal("0.000000000002")
    )
    with pytest.raises(UsageSumOverflow):
        combine("avg", parts("9999999999999999999999.999999999999", "0.000000000002"), 0)


def test_a_sum_of_exactly_34_digits_or_with_only_zeros_beyond_them_is_kept() -> None:
    assert combine("sum", parts("9999999999999999999999.999999999998", "0.000000000001"),
                   0) == Decimal("9999999999999999999999.999999999999")
    assert combine("sum", parts("9999999999999999999999.999999999999", "0.000000000001"),
                   0) == Decimal(10) ** 22


def bucket(**quarters: str) -> dict[str, object]:
    """A stored bucket at 18:00Z whose quarter-hours (by first minute) hold these sums."""
    subs = {m.lstrip("m"): {"sum": Decimal(v), "count": 1, "max": Decimal(v),
                            "latest": Decimal(v), "latest_time": HOUR + int(m[1:]) * MINUTE}
            for m, v in quarters.items()}
    total = sum((Decimal(v) for v in quarters.values()), Decimal(0))
    return {"hour": HOUR, "sum": total, "count": len(subs), "max": total, "latest": total,
            "latest_time": HOUR, "quarters": subs}


HOUR = datetime(2013, 7, 31, 18, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_an_interval_picks_the_quarter_hours_whose_start_it_contains() -> None:
    doc = bucket(m0="1", m15="2", m30="4", m45="8")
    at = [HOUR + n * MINUTE for n in (0, 15, 30, 45, 60)]
    assert [p.sum for p in parts_in(doc, at[0] - 60 * MINUTE, at[2])] == [1, 2]
    assert [p.sum for p in parts_in(doc, at[2], at[4] + 60 * MINUTE)] == [4, 8]
    assert [p.sum for p in parts_in(doc, at[0], at[4])] == [15], "the whole hour at once"
    assert [p.sum for p in parts_in(doc, at[1], at[3])] == [2, 4]
    assert [p.sum for p in parts_in(doc, at[0] + 7 * MINUTE, at[2] + 7 * MINUTE)] == [2, 4], (
        "a boundary inside a quarter-hour counts it where its start is"
    )
    assert parts_in(doc, at[4], at[4] + 60 * MINUTE) == []


def test_a_bucket_without_quarter_hours_counts_whole_at_its_hour_start() -> None:
    doc = bucket(m0="1", m30="4")
    del doc["quarters"]
    assert [p.sum for p in parts_in(doc, HOUR, HOUR + 30 * MINUTE)] == [5]
    assert parts_in(doc, HOUR + 30 * MINUTE, HOUR + 90 * MINUTE) == []


def test_latest_is_the_latest_time_and_the_larger_quantity_on_a_tie() -> None:
    early = Part(T, Decimal(1), 1, Decimal(9), Decimal(9), T)
    late = Part(T, Decimal(1), 1, Decimal(2), Decimal(2), T + MINUTE)
    tie = Part(T, Decimal(1), 1, Decimal(3), Decimal(3), T + MINUTE)
    assert combine("latest", [early, late, tie], 0) == combine("latest", [tie, late, early], 0)
    assert combine("latest", [early, late], 0) == 2
    assert combine("max", [early, late], 0) == 9 and combine("count", [early, late], 0) == 2
