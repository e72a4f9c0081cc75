"""What the chaos scenarios survived, as one table printed at the end of the test run.

    record("demo --chaos, one month", kills=10, restarts=10, events=207135, ...)

`tests/conftest.py` prints `table()` in pytest's terminal summary: one row per recorded
scenario, one column per figure name (in the order first seen; `-` where a scenario has none),
so a reader sees at a glance what was broken and what came out equal.

Tests may run in several pytest-xdist worker processes: rows are appended as JSON lines to the
file `SINK`, which `tests/conftest.py` creates in the controlling process and hands to each
worker, and the controlling process reads them back for the summary.
"""

import json
from pathlib import Path

#: The run's row file (set by tests/conftest.py in every process of the run).
SINK: Path | None = None


def record(scenario: str, **figures: object) -> None:
    """Add one row: `scenario` and its figures (counts, seconds, yes/no)."""
    if SINK is not None:
        with SINK.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"scenario": scenario, **figures}, default=str) + "\n")


def recorded() -> list[dict[str, object]]:
    """Every row recorded in this run, by any process."""
    if SINK is None or not SINK.exists():
        return []
    return [json.loads(line) for line in SINK.read_text(encoding="utf-8").splitlines() if line]


def table(rows: list[dict[str, object]] | None = None) -> list[str]:
    """The rows as aligned text lines (header, rule, rows); no lines when nothing was recorded."""
    rows = recorded() if rows is None else rows
    if not rows:
        return []
    columns: list[str] = []
    for row in rows:
        columns += [name for name in row if name not in columns]
    cells = [[_text(row.get(name, "-")) for name in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return [line(columns), "-+-".join("-" * w for w in widths), *(line(r) for r in cells)]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
