"""Tables of the usage ingestion benchmark (bench/usage_ingest.py): per-run figures, latency
and the scaling targets next to the measured values."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from bench.ingest_support import Samples, fmt, quantile, summed

#: limits of the scaling targets (platform throughput, documents, CPU and freshness)
DOCS_PER_EVENT_MAX = 0.05
RATIO_MIN = 0.10
CPU_US_MAX = 12.0
P99_SECONDS_MAX = 2.0


def run_table(runs: list[dict[str, Any]], header: bool = True) -> str:
    """One line per throughput run (N collectors)."""
    cols = ("N", "events/s", "steady/s", "raw/s", "ratio", "steady", "cpu us", "steady us",
            "RSS MB", "docs/ev", "stored/ev", "retries", "dups")
    lines = ["".join(f"{c:>11}" for c in cols)] if header else []
    for r in runs:
        cells = (r["collectors"], fmt(r["events_per_s"]), fmt(r["steady_events_per_s"]),
                 fmt(r["raw_events_per_s"]), fmt(r["ratio"], ".3f"), fmt(r["steady_ratio"], ".3f"),
                 fmt(r["cpu_us_per_event"], ".1f"), fmt(r["steady_cpu_us_per_event"], ".1f"),
                 fmt(r["peak_rss_mb"]), fmt(r["documents_per_event"], ".3f"),
                 fmt(r["stored_documents_per_event"], ".3f"), fmt(r["write_retries"]),
                 r["duplicates"])
        lines.append("".join(f"{c:>11}" for c in cells))
        if not r["steady_measured"]:
            lines.append("           (one commit held every event: the steady figures equal "
                         "the start-up ones; use more --events)")
        by = r["documents_per_event_by_collection"]
        lines.append("           documents written per event: " + (
            ", ".join(f"{k} {v:.4f}" for k, v in sorted(by.items())) if by else
            "n/a (the collector has no billing_usage_documents_written_total)"))
        lines.append("           embedded servers' CPU per event: " + servers(r))
        lines.append("           documents stored at the end: " + ", ".join(
            f"{k} {v:,}" for k, v in sorted(r["stored_documents_by_collection"].items())))
    if header:
        lines.append("events/s from start-up (incl. process start and group join); steady/s "
                     "from the first commit; ratio = collector / raw aiokafka consumption; "
                     "cpu = all collectors' CPU; RSS = largest process")
    return "\n".join(lines)


def servers(r: dict[str, Any]) -> str:
    """The embedded stack's server CPU (us/event) of a run, or n/a (external servers)."""
    us = r["server_cpu_us_per_event"]
    return ", ".join(f"{k} {v:.1f} us" for k, v in sorted(us.items())) if us else "n/a"


def lag_quantiles(lat: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    """(p50, p99) seconds per source: the two metric labels and the outside check."""
    out = {f"metric since {since}": (quantile(b, 0.5), quantile(b, 0.99))
           for since, b in lat["metrics"].items()}
    lags = sorted(lat["outside_lags"])
    out["outside check"] = ((lags[len(lags) // 2], lags[min(len(lags) - 1,
                             int(len(lags) * 0.99))]) if lags else (None, None))
    return out


def latency_report(lat: dict[str, Any]) -> str:
    """The latency run: quantiles from the metric and from outside."""
    lines = [f"published {lat['events']:,} events (target {lat['rate_events_per_s']:,.0f}/s, "
             f"achieved {lat['achieved_events_per_s']:,.0f}/s); "
             f"collector CPU {lat['cpu_seconds']:.1f} s; {fmt(lat['batches']['count'])} batch "
             f"transactions ({fmt(lat['batches']['retries'])} retried), "
             f"{fmt(lat['batches']['mean_events'])} events and "
             f"{fmt(lat['batches']['mean_write_seconds'], '.3f')} s each on average; "
             f"servers' CPU per event: {servers(lat)}"]
    if lat["behind_at_end"] > 0:
        lines.append(f"  NOT CAUGHT UP: {lat['behind_at_end']:,} events still not aggregated "
                     "when the bench stopped waiting (the quantiles cover the others only)")
    for source, (p50, p99) in lag_quantiles(lat).items():
        lines.append(f"  {source:<28} p50 {fmt(p50, '.3f')} s   p99 {fmt(p99, '.3f')} s")
    lines.append("  (metric quantiles: from the cumulative buckets of "
                 "billing_usage_event_lag_seconds, linear interpolation inside a bucket; "
                 "outside check: every 0.1 s of publishing, the time until the aggregated "
                 "count reached the count published, polled every 0.05 s)")
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def targets(runs: list[dict[str, Any]], lat: dict[str, Any] | None
            ) -> tuple[list[dict[str, Any]], str]:
    """The scaling targets next to the measured values: rows for the JSON and a table."""
    by_n = {r["collectors"]: r for r in runs}
    one = runs[0]
    who = f"{one['collectors']} collector" + ("s" if one["collectors"] > 1 else "")
    rows: list[dict[str, Any]] = []

    def add(name: str, target: str, value: str, ok: bool | None) -> None:
        rows.append({"target": name, "limit": target, "measured": value,
                     "verdict": _verdict(ok)})

    if 1 in by_n and 2 in by_n:
        a, b = by_n[1]["steady_events_per_s"], by_n[2]["steady_events_per_s"]
        add("2 collectors faster than 1", "> 1 collector", f"{b:,.0f} vs {a:,.0f} events/s",
            b > a)
    else:
        add("2 collectors faster than 1", "> 1 collector", "n/a (run 1 and 2)", None)
    docs = one["documents_per_event"]
    add(f"documents per event ({who})", f"<= {DOCS_PER_EVENT_MAX}",
        fmt(docs, ".3f"), None if docs is None else docs <= DOCS_PER_EVENT_MAX)
    add(f"collector/raw ratio ({who}, steady)", f">= {RATIO_MIN}",
        f"{one['steady_ratio']:.3f} ({one['ratio']:.3f} incl. start-up)",
        one["steady_ratio"] >= RATIO_MIN)
    add(f"CPU per event ({who}, steady)", f"<= {CPU_US_MAX} us",
        f"{one['steady_cpu_us_per_event']:.1f} us ({one['cpu_us_per_event']:.1f} incl. "
        "start-up)", one["steady_cpu_us_per_event"] <= CPU_US_MAX)
    if lat is None:
        add("p99 event-to-aggregate latency", f"<= {P99_SECONDS_MAX} s", "n/a (skipped)", None)
    else:
        q = lag_quantiles(lat)
        p99 = q["metric since event_time"][1]
        source = "metric since event_time"
        if p99 is None:
            p99, source = q["outside check"][1], "outside check (no lag metric)"
        if lat["behind_at_end"] > 0:
            source += f"; {lat['behind_at_end']:,} events never aggregated in time"
        add("p99 event-to-aggregate latency", f"<= {P99_SECONDS_MAX} s",
            f"{fmt(p99, '.3f')} s ({source})",
            None if p99 is None else p99 <= P99_SECONDS_MAX and not lat["behind_at_end"])
    width = max(len(r["target"]) for r in rows)
    lines = [f"{'target':<{width}}  {'limit':<14} {'verdict':<7} measured"]
    lines += [f"{r['target']:<{width}}  {r['limit']:<14} {r['verdict']:<7} {r['measured']}"
              for r in rows]
    return rows, "\n".join(lines)


def batches(before: list[Samples], after: list[Samples]) -> dict[str, float | None]:
    """Batch transactions between two scrapes: count, retries, mean events and mean write
    seconds."""
    def delta(name: str) -> float:
        return (summed(after, name) or 0.0) - (summed(before, name) or 0.0)

    count = delta("billing_usage_write_seconds_count")
    return {"count": count, "retries": delta("billing_usage_write_retries_total"),
            "mean_events": delta("billing_usage_batch_size_events_sum") / count if count else None,
            "mean_write_seconds": delta("billing_usage_write_seconds_sum") / count if count
            else None}


def outside_lags(checkpoints: list[tuple[float, int]], polls: list[tuple[float, int]]
                 ) -> list[float]:
    """Per publishing checkpoint (every ~0.1 s): seconds until the aggregated count reached
    the count published then (an upper bound of the newest event's lag, plus <= one poll)."""
    lags, i = [], 0
    for at, count in checkpoints:
        while i < len(polls) and (polls[i][0] < at or polls[i][1] < count):
            i += 1
        if i == len(polls):
            break
        lags.append(polls[i][0] - at)
    return lags


def machine() -> str:
    """CPU model and count, for the results table."""
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{platform.node()}: {os.cpu_count()} x {model}, Python {platform.python_version()}"


def markdown(report: dict[str, Any]) -> str:
    """The figures as Markdown tables (for bench/README.md)."""
    lines = [f"Usage ingestion, {report['date']}, {report['machine']} ({report['servers']}); "
             f"`{report['command']}`", "",
             "| collectors | events/s | steady events/s | raw events/s | ratio (steady) "
             "| CPU us/event (steady) | peak RSS MB | documents/event | retries |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        lines.append(
            f"| {r['collectors']} | {r['events_per_s']:,.0f} | {r['steady_events_per_s']:,.0f} "
            f"| {r['raw_events_per_s']:,.0f} | {r['ratio']:.3f} ({r['steady_ratio']:.3f}) "
            f"| {r['cpu_us_per_event']:.1f} ({r['steady_cpu_us_per_event']:.1f}) "
            f"| {r['peak_rss_mb']:.0f} | {fmt(r['documents_per_event'], '.3f')} "
            f"| {fmt(r['write_retries'])} |")
    lat = report["latency"]
    if lat is not None:
        lines += ["", f"Latency at {lat['achieved_events_per_s']:,.0f} events/s, "
                  f"{lat['collectors']} collector(s), {lat['seconds']:g} s:", "",
                  "| source | p50 s | p99 s |", "|---|---|---|"]
        lines += [f"| {source} | {fmt(p50, '.3f')} | {fmt(p99, '.3f')} |"
                  for source, (p50, p99) in lag_quantiles(lat).items()]
    lines += ["", "| target | limit | verdict | measured |", "|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['limit']} | {r['verdict']} | {r['measured']} |"
              for r in report["targets"]]
    return "\n".join(lines) + "\n"
