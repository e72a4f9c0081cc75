"""The end-of-run table of what the chaos scenarios survived."""

from pathlib import Path

import pytest

from tests.support import chaos
from tests.support.chaos import table

pytestmark = pytest.mark.unit


def test_the_table_has_a_column_per_figure_and_a_row_per_scenario() -> None:
    lines = table(
        [
            {"scenario": "no faults", "kills": 0, "invoices compared": 9},
            {"scenario": "chaos", "kills": 10, "duplicates found": 0, "replay equal": True},
        ]
    )
    assert lines[0].split(" | ") == [
        "scenario ", "kills", "invoices compared", "duplicates found", "replay equal"
    ]
    cells = [[cell.strip() for cell in line.split(" | ")] for line in lines[2:]]
    assert cells == [["no faults", "0", "9", "-", "-"], ["chaos", "10", "-", "0", "yes"]]
    assert len({line.index("|") for line in lines if "|" in line}) == 1  # aligned
    assert set(lines[1]) <= {"-", "+", " "}


def test_nothing_is_printed_when_no_scenario_ran() -> None:
    assert table([]) == []


def test_rows_recorded_in_any_process_reach_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chaos, "SINK", tmp_path / "rows.jsonl")
    chaos.record("demo --chaos", kills=10, equal=True)
    chaos.record("no faults", seconds=91.2)
    assert chaos.recorded() == [
        {"scenario": "demo --chaos", "kills": 10, "equal": True},
        {"scenario": "no faults", "seconds": 91.2},
    ]
    assert table()[0].split(" | ")[0].strip() == "scenario"
