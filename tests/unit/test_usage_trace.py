"""The Bitbrains trace row conversion (the format: `services/usage_collector/trace.py`)."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from services.usage_collector.trace import BadRow, Owner, convert_row, load_owners, usage_events

pytestmark = pytest.mark.unit

ROW = ("1372629804;\t4;\t9599.998916;\t180.7999795846667;\t1.8833333333333335;\t4177920.0;"
       "\t1.6324608E7;\t0.0;\t9.0;\t0.06666666666666667;\t0.5\n")


def test_a_row_becomes_three_meters_rounded_half_up_to_six_places() -> None:
    row = convert_row(ROW)
    assert row.timestamp == 1372629804
    # 4 x 1.8833333333333335 / 100 / 12 = 0.006277777...
    assert row.quantities["cpu_hours"] == Decimal("0.006278")
    # 16324608 / 1048576 / 12 = 1.297363...
    assert row.quantities["memory_gb_hours"] == Decimal("1.297363")
    # (0.0666... + 0.5) x 300 / 1048576 = 0.000162124...
    assert row.quantities["bandwidth_gb"] == Decimal("0.000162")


def test_rounding_is_half_up_not_half_even() -> None:
    # cores 1, 0.0006 % -> 0.0000005 exactly: half-up gives 0.000001
    row = convert_row("1;\t1;\t0;\t0;\t0.0006;\t0;\t0;\t0;\t0;\t0;\t0")
    assert row.quantities["cpu_hours"] == Decimal("0.000001")


def test_a_row_of_zero_cores_is_valid_with_zero_quantities() -> None:
    row = convert_row("1375174953;\t0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0;\t0.0")
    assert set(row.quantities.values()) == {Decimal("0.000000")}


@pytest.mark.parametrize(
    "line",
    [
        "1372629804;\t4;\t9599",
        "1372629804;\tfour;\t1;\t1;\t1;\t1;\t1;\t1;\t1;\t1;\t1",
        "1372629804;\t4;\t1;\t1;\t-1;\t1;\t1;\t1;\t1;\t1;\t1",
        "1372629804;\t4;\t1;\t1;\tNaN;\t1;\t1;\t1;\t1;\t1;\t1",
        "1372629804;\t4;\t1;\t1;\t1;\t1;\tinf;\t1;\t1;\t1;\t1",
        "1372629804.5;\t4;\t1;\t1;\t1;\t1;\t1;\t1;\t1;\t1;\t1",
    ],
)
def test_unparseable_rows_are_refused(line: str) -> None:
    with pytest.raises(BadRow):
        convert_row(line)


def test_events_carry_the_ids_source_subject_and_service(shared_data: Path) -> None:
    owners = load_owners(shared_data / "tenants.json")
    assert owners["399"] == Owner("acme", "web")
    assert load_owners(shared_data / "tenants.json", "no-such-trace") == {}
    events = usage_events("399", owners["399"], convert_row(ROW))
    assert [e["id"] for e in events] == [
        "399-1372629804-cpu_hours", "399-1372629804-memory_gb_hours",
        "399-1372629804-bandwidth_gb",
    ]
    first = events[0]
    assert (first["source"], first["subject"], first["time"]) == (
        "bitbrains", "acme", "2013-06-30T22:03:24Z"
    )
    assert first["data"] == {
        "meter": "cpu_hours", "quantity": "0.006278", "service": "web", "resource_id": "399"
    }
    json.dumps(events)
