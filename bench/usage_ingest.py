"""Usage ingestion benchmark (not a test): throughput of 1, 2 and 4 collectors, and latency.

For each collector count N (`--collectors 1,2,4`), in a fresh topic prefix and database:
publishes `--events` usage events (default 500,000; 1,000 tenants x 4 meters) in time order
as a live platform would, measures raw aiokafka consumption of that topic (the physical
limit), then starts N `billing run usage-collector` processes in one consumer group and
measures end to end until every event is aggregated (`collector_stats`): events/s (with and
without the start-up before the first commit), the ratio against raw consumption, CPU
microseconds per event (all collectors summed), peak RSS (largest process), MongoDB
documents written per event (the collectors' `billing_usage_documents_written_total`, scraped
from `/metrics` before stopping them) and transaction retries.

Then latency: with a fresh prefix and `--latency-collectors` collectors, publishes at a steady
half of the measured 1-collector capacity for `--latency-seconds`, event `time` = now, and
reads p50/p99 of `billing_usage_event_lag_seconds` from the collectors' `/metrics`; the bench
also measures it from outside (when the aggregated count reaches the count published).

Last, a table puts the targets of the scaling work (bench/ingest_targets.py) next to the
measured values; `--json` writes every figure, `--markdown` the tables. On the embedded stack
the servers' own CPU per event is printed too (there the MongoDB server is often the limit).

Servers: BILLING_KAFKA_BOOTSTRAP_SERVERS and BILLING_MONGO_URI when set, otherwise an
embedded stack started in a temporary directory (and stopped afterwards). The usage topic
needs at least as many partitions as collectors (8 by default; BILLING_TOPIC_PARTITIONS).

    .venv/bin/python bench/usage_ingest.py [--events 500000] [--collectors 1,2,4] [--json F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest_support as sup  # noqa: E402
from bench.ingest_targets import (  # noqa: E402
    batches,
    latency_report,
    machine,
    markdown,
    outside_lags,
    run_table,
    targets,
)
from services.common.mongo import database, make_client  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from services.usage_collector.adapters.store import collector_stats  # noqa: E402

LAG = "billing_usage_event_lag_seconds"
WRITTEN = "billing_usage_documents_written_total"
POLL_SECONDS = 0.05  # the outside check's polling interval of `collector_stats`


def fresh(base: dict[str, str]) -> tuple[dict[str, str], CommonSettings]:
    """A new topic prefix and database on the same servers, and the settings for them."""
    tag = uuid.uuid4().hex[:8]
    env = {**base, "BILLING_TOPIC_PREFIX": f"bench{tag}.", "BILLING_MONGO_DB": f"bench_{tag}"}
    os.environ.update(env)
    return env, CommonSettings()


async def throughput(base: dict[str, str], n: int, args: argparse.Namespace) -> dict[str, Any]:
    """One throughput run with `n` collectors; its figures."""
    env, settings = fresh(base)
    events = args.events
    partitions = await sup.usage_partitions(settings)
    published = await sup.publish_backlog(settings, events, args.tenants)
    raw = await sup.raw_consume(settings, events)
    client = make_client(settings)
    db = database(client, settings)
    servers = sup.servers_cpu(args.server_pids)
    collectors = sup.Collectors(env, n, Path(args.logs) / settings.mongo_db)
    started, first_at, cpu_first = time.perf_counter(), 0.0, 0.0
    try:
        while (stats := await collector_stats(db))["aggregated"] < events:
            if not first_at and stats["aggregated"]:
                first_at, cpu_first = time.perf_counter(), collectors.cpu_seconds()
            if time.perf_counter() - started > args.timeout:
                raise RuntimeError(f"{stats['aggregated']} of {events} aggregated in time")
            collectors.check_alive()
            await asyncio.sleep(0.2)
        done = time.perf_counter()
        cpu, rss, metrics = collectors.cpu_seconds(), collectors.peak_rss_mb(), collectors.scrape()
        servers_us = sup.cpu_since(args.server_pids, servers, events)
        stored = {name: await db[name].estimated_document_count()
                  for name in await db.list_collection_names()}
    finally:
        collectors.stop()
        await client.drop_database(settings.mongo_db)
        await client.close()
    steady = bool(first_at)  # False: everything came in the first commit seen
    first_at, cpu_first = first_at or started, cpu_first or 0.0
    written = sup.by_label(metrics, WRITTEN, "collection")
    return {
        "collectors": n, "events": events, "partitions": partitions, "steady_measured": steady,
        "publish_seconds": round(published, 2), "raw_events_per_s": events / raw,
        "seconds": done - started, "events_per_s": events / (done - started),
        "steady_events_per_s": events / max(done - first_at, 1e-9),
        "ratio": events / (done - started) / (events / raw),
        "steady_ratio": events / max(done - first_at, 1e-9) / (events / raw),
        "cpu_us_per_event": cpu * 1e6 / events,
        "steady_cpu_us_per_event": (cpu - cpu_first) * 1e6 / events,
        "peak_rss_mb": rss, "server_cpu_us_per_event": servers_us,
        "documents_per_event": sum(written.values()) / events if written else None,
        "documents_per_event_by_collection": {k: v / events for k, v in written.items()},
        "stored_documents_per_event": sum(stored.values()) / events,
        "stored_documents_by_collection": stored,
        "write_retries": sup.summed(metrics, "billing_usage_write_retries_total"),
        "duplicates": stats["duplicates"],
    }


async def warm_up(settings: CommonSettings, collectors: sup.Collectors, partitions: int) -> int:
    """Publish a round of one event per partition until every collector has aggregated one
    (all joined the group and were assigned partitions); returns the events published."""
    sent, deadline = 0, time.monotonic() + 180
    client = make_client(settings)
    try:
        db = database(client, settings)
        while time.monotonic() < deadline:
            await sup.publish_round(settings, partitions, sent)
            sent += partitions
            for _ in range(20):
                collectors.check_alive()
                await asyncio.sleep(0.1)
                scraped = [sup.scrape(port) for port in collectors.ports]
                joined = all(s is not None and sup.summed([s], "billing_usage_events_total")
                             for s in scraped)
                if joined and (await collector_stats(db))["aggregated"] >= sent:
                    return sent
        raise RuntimeError("the collectors did not all join the group within 180 s")
    finally:
        await client.close()


async def latency(base: dict[str, str], rate: float, args: argparse.Namespace) -> dict[str, Any]:
    """Steady publishing at `rate` events/s; lag quantiles from `/metrics` and from outside."""
    env, settings = fresh(base)
    partitions = await sup.usage_partitions(settings)
    collectors = sup.Collectors(env, args.latency_collectors, Path(args.logs) / settings.mongo_db)
    client = make_client(settings)
    db = database(client, settings)
    checkpoints: list[tuple[float, int]] = []
    polls: list[tuple[float, int]] = []
    try:
        warm = await warm_up(settings, collectors, partitions)
        before, servers = collectors.scrape(), sup.servers_cpu(args.server_pids)
        publishing = True

        async def poll() -> None:
            while publishing or not polls or polls[-1][1] < checkpoints[-1][1]:
                collectors.check_alive()
                aggregated = (await collector_stats(db))["aggregated"] - warm
                polls.append((time.perf_counter(), aggregated))
                await asyncio.sleep(POLL_SECONDS)

        poller = asyncio.create_task(poll())
        sent = await sup.publish_steady(settings, rate, args.latency_seconds, args.tenants,
                                        lambda t, n: checkpoints.append((t, n)))
        publishing = False
        try:
            await asyncio.wait_for(poller, timeout=args.catch_up_seconds)
        except TimeoutError:  # the figures cover what was aggregated by then
            pass
        after = collectors.scrape()
        cpu = collectors.cpu_seconds()
        servers_us = sup.cpu_since(args.server_pids, servers, sent)
    finally:
        collectors.stop()
        await client.drop_database(settings.mongo_db)
        await client.close()
    return {
        "collectors": args.latency_collectors, "rate_events_per_s": rate,
        "seconds": args.latency_seconds, "events": sent, "cpu_seconds": cpu,
        "achieved_events_per_s": sent / args.latency_seconds,
        "server_cpu_us_per_event": servers_us,
        "metrics": {since: sup.diff(sup.histogram(after, LAG, since=since),
                                    sup.histogram(before, LAG, since=since))
                    for since in ("event_time", "publish_time")},
        "outside_lags": outside_lags(checkpoints, polls),
        "behind_at_end": sent - (polls[-1][1] if polls else 0),
        "batches": batches(before, after),
    }


async def main(args: argparse.Namespace, base: dict[str, str]) -> dict[str, Any]:
    counts = sorted({int(c) for c in str(args.collectors).split(",") if c.strip()})
    print(f"{args.events:,} events ({args.tenants} tenants x {len(sup.METERS)} meters) per run;"
          f" collectors {counts}", flush=True)
    runs = []
    for n in counts:
        print(f"\n-- {n} collector(s): publishing, raw consumption, collecting...", flush=True)
        runs.append(await throughput(base, n, args))
        print(run_table(runs[-1:], header=False), flush=True)
    print(f"\nusage topic partitions: {runs[0]['partitions']}"
          + ("" if runs[0]["partitions"] >= max(counts) else
             f" - FEWER than {max(counts)} collectors: some collectors stay idle"))
    print("\n" + run_table(runs))
    lat = None
    if args.latency_seconds > 0:
        rate = args.latency_rate or runs[0]["steady_events_per_s"] / 2
        print(f"\n-- latency: {args.latency_collectors} collector(s), {rate:,.0f} events/s for "
              f"{args.latency_seconds:g} s (half of {runs[0]['collectors']}-collector capacity)",
              flush=True)
        lat = await latency(base, rate, args)
        print(latency_report(lat))
    rows, table = targets(runs, lat)
    print("\n" + table)
    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine(),
            "servers": "embedded stack" if args.server_pids else "external",
            "command": " ".join(sys.argv), "events": args.events, "tenants": args.tenants,
            "runs": runs, "latency": lat, "targets": rows}


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--collectors", default="1,2,4", help="counts, comma-separated")
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="0: skip")
    parser.add_argument("--latency-collectors", type=int, default=1)
    parser.add_argument("--latency-rate", type=float, default=0.0,
                        help="events/s (default: half the first run's steady events/s)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run at most")
    parser.add_argument("--catch-up-seconds", type=float, default=240.0,
                        help="how long the latency run waits for the last events after publishing")
    parser.add_argument("--logs", default=".billing/bench-ingest", help="collector logs")
    parser.add_argument("--json", default="", help="write every figure to this file")
    parser.add_argument("--markdown", default="", help="write the figures' tables to this file")
    args = parser.parse_args()
    base = dict(os.environ, BILLING_LOG_LEVEL="WARNING", PYTHONPATH=str(sup.ROOT))
    args.server_pids = {}
    with tempfile.TemporaryDirectory() as tmp:
        stack = None
        if not (base.get("BILLING_KAFKA_BOOTSTRAP_SERVERS") and base.get("BILLING_MONGO_URI")):
            from services.devstack.api import EmbeddedStack

            stack = EmbeddedStack(Path(tmp))
        try:
            if stack is not None:
                state = stack.up(timeout=90)
                base.update(state.env(stack.directory))
                args.server_pids = {name: c.pid for name, c in state.components.items()
                                    if name in ("mongodb", "kafka", "kafka-link")}
            report = asyncio.run(main(args, base))
        finally:
            if stack is not None:
                stack.down()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"figures written to {args.json}")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))
        print(f"tables written to {args.markdown}")


if __name__ == "__main__":
    run()
