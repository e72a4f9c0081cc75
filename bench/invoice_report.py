"""Run-time estimate and the printed table of the invoice run benchmark
(`bench/invoice_run.py`).

The estimate uses rates measured on the embedded stack (2 cores): about 14,000 bucket
inserts/s and 20,000 bucket reads/s, tenants configured at `SETUPS_PER_S`, and a cycle no
faster than the one-transaction-at-a-time cycle (45 invoices/s) plus reading every bucket
once. It is an upper bound rather than a forecast: a faster cycle only shortens the run.
"""

from __future__ import annotations

from typing import Any

BUCKET_WRITES_PER_S = 14_000
BUCKET_READS_PER_S = 20_000
SETUPS_PER_S = 100
INVOICES_PER_S = 45
METERS = 4
#: Starting the embedded stack, the floors' insert and the checks.
OVERHEAD_S = 30


def estimate_seconds(tenants: int, hours: int) -> float:
    """Upper estimate of a whole run: setup, usage writes, cycle (issue + one read of every
    bucket), raw read floor."""
    buckets = tenants * METERS * hours
    return (OVERHEAD_S + tenants / SETUPS_PER_S + tenants / INVOICES_PER_S
            + buckets / BUCKET_WRITES_PER_S + 2 * buckets / BUCKET_READS_PER_S)


def suggest_hours(tenants: int, budget_s: float) -> int:
    """The largest `--usage-hours` whose estimate fits `budget_s` (0: none fits)."""
    fixed = estimate_seconds(tenants, 0)
    per_hour = estimate_seconds(tenants, 1) - fixed
    return max(0, int((budget_s - fixed) / per_hour))


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def derive(out: dict[str, Any]) -> None:
    """Add rates and ratios to `out` (in place)."""
    setup, usage, cycle, floors = out["setup"], out["usage"], out["cycle"], out["floors"]
    setup["per_second"] = _rate(setup["tenants"], setup["seconds"])
    usage["buckets_per_second"] = _rate(usage["buckets"], usage["seconds"])
    cycle["invoices_per_second"] = _rate(cycle["issued"], cycle["seconds"])
    floors["insert_per_second"] = _rate(floors["insert_docs"], floors["insert_seconds"])
    floors["read_per_second"] = _rate(floors["read_buckets"], floors["read_seconds"])
    out["ratios"] = {
        "insert_floor_over_cycle": _rate(floors["insert_seconds"], cycle["seconds"]),
        "floors_over_cycle": _rate(floors["insert_seconds"] + floors["read_seconds"],
                                   cycle["seconds"]),
    }
    correctness = out["correctness"]
    out["ok"] = (not correctness["problems"] and cycle["billing_errors"] == 0
                 and cycle["failed"] == 0 and cycle["issued"] == setup["tenants"])


def print_table(out: dict[str, Any]) -> bool:
    """Print the figures of a finished run (after `derive`); True when every check passed."""
    derive(out)
    s, u, c, f, r = (out[k] for k in ("setup", "usage", "cycle", "floors", "ratios"))
    rss = f"{c['peak_rss_mb']:.0f} MB" if c["peak_rss_mb"] is not None else "n/a"
    rows = [
        ("tenants configured", f"{s['tenants']:,}", f"{s['seconds']:.1f} s",
         f"{s['per_second']:,.0f} tenants/s"),
        ("usage buckets written", f"{u['buckets']:,}", f"{u['seconds']:.1f} s",
         f"{u['buckets_per_second']:,.0f} buckets/s"),
        ("cycle: invoices issued", f"{c['issued']:,}", f"{c['seconds']:.1f} s",
         f"{c['invoices_per_second']:,.1f} invoices/s"),
        ("floor: insert_many invoices", f"{f['insert_docs']:,}", f"{f['insert_seconds']:.2f} s",
         f"{f['insert_per_second']:,.0f} docs/s"),
        ("floor: raw read of buckets", f"{f['read_buckets']:,}", f"{f['read_seconds']:.1f} s",
         f"{f['read_per_second']:,.0f} buckets/s"),
    ]
    print()
    print(f"{'step':<30}{'count':>12}{'time':>12}   rate")
    for name, count, seconds, rate in rows:
        print(f"{name:<30}{count:>12}{seconds:>12}   {rate}")
    print()
    print(f"ratio insert floor / cycle:          {r['insert_floor_over_cycle']:.3f}"
          "  (target >= 0.2)")
    print(f"ratio (insert + read floors) / cycle: {r['floors_over_cycle']:.3f}")
    print(f"billing errors: {c['billing_errors']}  failed: {c['failed']}  "
          f"overdue marked: {c['overdue']}")
    print(f"peak RSS during the cycle: {rss}  (whole process: "
          f"{out['process_peak_rss_mb']:.0f} MB)")
    checked = out["correctness"]
    problems = checked["problems"]
    print(f"correctness: {checked['checked']} invoices priced again independently, "
          f"{checked['invoices']:,} numbers checked: "
          f"{'OK' if not problems else f'{len(problems)} PROBLEMS'}")
    for problem in problems[:50]:
        print(f"  {problem}")
    if len(problems) > 50:
        print(f"  ... and {len(problems) - 50} more")
    if not out["ok"]:
        print("FAILED: see the problems and billing errors above")
    return bool(out["ok"])
