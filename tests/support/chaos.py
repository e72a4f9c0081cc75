"""What the chaos scenarios survived, as one table printed at the end of the test run.

    record("demo --chaos, one month", kills=10, restarts=10, events=207135, ...)

`tests/conftest.py` prints `table()` in pytest's terminal summary: one row per recorded
scenario, one column per figure name (in the order first seen; `-` where a scenario has none),
so a reader sees at a glance what was broken and what came out equal.
"""

RECORDED: list[dict[str, object]] = []


def record(scenario: str, **figures: object) -> None:
    """Add one row: `scenario` and its figures (counts, seconds, yes/no)."""
    RECORDED.append({"scenario": scenario, **figures})


def table(rows: list[dict[str, object]] | None = None) -> list[str]:
    """The rows as aligned text lines (header, rule, rows); no lines when nothing was recorded."""
    rows = RECORDED if rows is None else rows
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
