"""Usage ingestion benchmark (not a test).

Publishes N usage events (default 500,000) for 1,000 tenants x 4 meters, in time order as a
live platform would, then measures on the same broker:
  1. raw aiokafka consumption of that topic (no processing): events/s;
  2. the collector (`billing run usage-collector`, one OS process) end to end until every
     event is aggregated in MongoDB: events/s, CPU microseconds per event, peak RSS.
Prints both rates and their ratio (targets: ratio >= 0.30, <= 15 us/event, RSS <= 250 MB).

Servers: BILLING_KAFKA_BOOTSTRAP_SERVERS and BILLING_MONGO_URI when set, otherwise an
embedded stack started in a temporary directory (and stopped afterwards).

    python bench/usage_ingest.py [--events 500000] [--tenants 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts.topics import TOPIC_USAGE  # noqa: E402
from services.common.kafka import ensure_topics  # noqa: E402
from services.common.mongo import database, make_client  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from services.usage_collector.adapters.store import collector_stats  # noqa: E402

METERS = ("cpu_hours", "memory_gb_hours", "bandwidth_gb", "storage_gb")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def publish(settings: CommonSettings, events: int, tenants: int) -> float:
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, linger_ms=20,
        max_batch_size=512 * 1024, acks="all",
    )
    await producer.start()
    topic, started = settings.topic(TOPIC_USAGE), time.perf_counter()
    futures = []
    try:
        for n in range(events):
            tenant, meter = f"tenant-{n % tenants:04d}", METERS[(n // tenants) % len(METERS)]
            step = n // (tenants * len(METERS))
            body = {
                "specversion": "1.0", "id": f"ev-{n}", "source": "bench", "type": "billing.usage",
                "subject": tenant, "time": (T0 + timedelta(seconds=60 * step)).isoformat(),
                "data": {"meter": meter, "quantity": f"{n % 997}.{n % 1000:03d}",
                         "service": "compute"},
            }
            futures.append(await producer.send(topic, json.dumps(body).encode(),
                                               key=tenant.encode()))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(settings: CommonSettings, events: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024, max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        topic = settings.topic(TOPIC_USAGE)
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - bench only
            parts = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in parts])
        await consumer.seek_to_beginning()
        started, seen = time.perf_counter(), 0
        while seen < events:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def collect(settings: CommonSettings, env: dict[str, str], events: int) -> dict[str, float]:
    client = make_client(settings)
    db = database(client, settings)
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
        [sys.executable, "-m", "services.cli", "run", "usage-collector"], env=env, cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    started = time.perf_counter()
    first_at = cpu_at_first = None
    try:
        while True:
            stats = await collector_stats(db)
            if first_at is None and stats["aggregated"]:
                first_at, cpu_at_first = time.perf_counter(), proc_cpu_seconds(proc.pid)
            if stats["aggregated"] + stats["duplicates"] >= events:
                break
            if proc.poll() is not None:
                raise RuntimeError("the collector exited")
            await asyncio.sleep(0.25)
        done = time.perf_counter()
        cpu, rss = proc_cpu_seconds(proc.pid), peak_rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        await client.drop_database(settings.mongo_db)
        await client.close()
    return {
        "seconds": done - started, "steady_seconds": done - (first_at or started),
        "cpu_seconds": cpu, "steady_cpu_seconds": cpu - (cpu_at_first or 0.0), "rss_mb": rss,
    }


async def main(args: argparse.Namespace, env: dict[str, str]) -> None:
    os.environ.update(env)
    settings = CommonSettings()
    n = args.events
    print(f"publishing {n} events ({args.tenants} tenants x {len(METERS)} meters)...")
    print(f"  published in {await publish(settings, n, args.tenants):.1f} s")
    raw = await raw_consume(settings, n)
    print(f"raw aiokafka consumption: {n / raw:,.0f} events/s ({raw:.1f} s)")
    col = await collect(settings, env, n)
    rate = n / col["seconds"]
    print(f"collector end to end:     {rate:,.0f} events/s ({col['seconds']:.1f} s incl. start-up;"
          f" {n / col['steady_seconds']:,.0f} events/s from the first commit)")
    print(f"ratio collector/raw:      {rate / (n / raw):.3f}")
    print(f"collector CPU:            {col['cpu_seconds'] * 1e6 / n:.1f} us/event "
          f"({col['steady_cpu_seconds'] * 1e6 / n:.1f} us/event after start-up)")
    print(f"collector peak RSS:       {col['rss_mb']:.0f} MB")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    env = dict(os.environ, BILLING_TOPIC_PREFIX=f"bench{tag}.", BILLING_MONGO_DB=f"bench_{tag}",
               BILLING_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    if os.environ.get("BILLING_KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("BILLING_MONGO_URI"):
        asyncio.run(main(args, env))
        return
    from services.devstack.stack import EmbeddedStack

    with tempfile.TemporaryDirectory() as tmp:
        stack = EmbeddedStack(Path(tmp))
        try:
            env.update(stack.up(timeout=90).env(stack.directory))
            asyncio.run(main(args, env))
        finally:
            stack.down()


if __name__ == "__main__":
    run()
