"""Helpers of the usage ingestion benchmark (bench/usage_ingest.py): publishing, raw
consumption, collector processes and their `/metrics`.

Nothing here is a test: figures measured on a busy machine are noisy.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from contracts.topics import TOPIC_USAGE
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.devstack.api import free_port

ROOT = Path(__file__).resolve().parent.parent
METERS = ("cpu_hours", "memory_gb_hours", "bandwidth_gb", "storage_gb")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: one Prometheus sample: (metric sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def usage_body(n: int, tenants: int, moment: datetime, tag: str = "ev") -> bytes:
    """The n-th bench usage event (CloudEvents JSON) for tenant n % tenants at `moment`."""
    tenant, meter = f"tenant-{n % tenants:04d}", METERS[(n // tenants) % len(METERS)]
    return json.dumps({
        "specversion": "1.0", "id": f"{tag}-{n}", "source": "bench", "type": "billing.usage",
        "subject": tenant, "time": moment.isoformat(timespec="milliseconds"),
        "data": {"meter": meter, "quantity": f"{n % 997}.{n % 1000:03d}", "service": "compute"},
    }).encode()


def producer(settings: CommonSettings, linger_ms: int) -> AIOKafkaProducer:
    """An aiokafka producer on the settings' brokers (acks=all, as the platform's importer)."""
    return AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                            linger_ms=linger_ms, max_batch_size=512 * 1024, acks="all")


async def usage_partitions(settings: CommonSettings) -> int:
    """Create the platform's topics (as the workers do) and return the usage topic's partitions."""
    await ensure_topics(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        for _ in range(50):
            described = await admin.describe_topics([settings.topic(TOPIC_USAGE)])
            if described and described[0].get("partitions"):
                return len(described[0]["partitions"])
            await asyncio.sleep(0.1)
        raise RuntimeError("the usage topic has no partitions")
    finally:
        await admin.close()


async def publish_backlog(settings: CommonSettings, events: int, tenants: int) -> float:
    """Publish `events` in time order (one minute per round of tenants x meters); seconds."""
    prod = producer(settings, linger_ms=20)
    await prod.start()
    topic, started, futures = settings.topic(TOPIC_USAGE), time.perf_counter(), []
    try:
        for n in range(events):
            moment = T0 + timedelta(seconds=60 * (n // (tenants * len(METERS))))
            key = f"tenant-{n % tenants:04d}".encode()
            futures.append(await prod.send(topic, usage_body(n, tenants, moment), key=key))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures = []
        await asyncio.gather(*futures)
    finally:
        await prod.stop()
    return time.perf_counter() - started


async def publish_steady(
    settings: CommonSettings, rate: float, seconds: float, tenants: int,
    checkpoint: Callable[[float, int], None],
) -> int:
    """Publish `rate` events/s for `seconds`, event `time` = now (ms); returns events sent.

    Every ~0.1 s `checkpoint(perf_counter, events sent so far)` is called (after a flush).
    """
    prod = producer(settings, linger_ms=2)
    await prod.start()
    topic, started, sent, next_mark = settings.topic(TOPIC_USAGE), time.perf_counter(), 0, 0.1
    try:
        while (elapsed := time.perf_counter() - started) < seconds:
            now = datetime.now(UTC)
            for n in range(sent, int(rate * elapsed)):
                await prod.send(topic, usage_body(n, tenants, now, "live"),
                                key=f"tenant-{n % tenants:04d}".encode())
            sent = max(sent, int(rate * elapsed))
            if elapsed >= next_mark:
                await prod.flush()
                checkpoint(time.perf_counter(), sent)
                next_mark += 0.1
            await asyncio.sleep(0.005)
        await prod.flush()
        checkpoint(time.perf_counter(), sent)
    finally:
        await prod.stop()
    return sent


async def publish_round(settings: CommonSettings, partitions: int, round_no: int) -> None:
    """One event (time = now) into every partition of the usage topic: wakes every consumer."""
    prod = producer(settings, linger_ms=0)
    await prod.start()
    try:
        for p in range(partitions):
            await prod.send(settings.topic(TOPIC_USAGE),
                            usage_body(p, 1, datetime.now(UTC), f"warm{round_no}"), partition=p)
        await prod.flush()
    finally:
        await prod.stop()


async def raw_consume(settings: CommonSettings, events: int) -> float:
    """Seconds for a bare aiokafka consumer to fetch `events` records from the usage topic."""
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


def scrape(port: int) -> Samples | None:
    """Every sample of the worker's `/metrics`, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def summed(samples: list[Samples], name: str, **labels: str) -> float | None:
    """Sum over processes of the samples named `name` whose labels include `labels`;
    None when no process exposes it (an older collector)."""
    values = [v for one in samples for (n, lab), v in one.items()
              if n == name and set(labels.items()) <= set(lab)]
    return sum(values) if values else None


def by_label(samples: list[Samples], name: str, label: str) -> dict[str, float]:
    """Sum over processes of `name`, per value of `label`."""
    out: dict[str, float] = defaultdict(float)
    for one in samples:
        for (n, lab), v in one.items():
            if n == name and label in dict(lab):
                out[dict(lab)[label]] += v
    return dict(out)


def histogram(samples: list[Samples], name: str, **labels: str) -> list[tuple[float, float]]:
    """Cumulative buckets [(upper bound, count)] of histogram `name` summed over processes."""
    counts = by_label([{k: v for k, v in one.items() if set(labels.items()) <= set(k[1])}
                       for one in samples], f"{name}_bucket", "le")
    return sorted((float(le), c) for le, c in counts.items())


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile of cumulative buckets, interpolated linearly inside the bucket that
    holds it (as Prometheus' histogram_quantile); the largest finite bound when it falls in
    +Inf; None without observations."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank, lower, below = q * buckets[-1][1], 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def diff(after: list[tuple[float, float]], before: list[tuple[float, float]]
         ) -> list[tuple[float, float]]:
    """Bucket counts observed between two scrapes."""
    old = dict(before)
    return [(bound, count - old.get(bound, 0.0)) for bound, count in after]


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def servers_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of the embedded stack's servers (name -> seconds; gone ones left out)."""
    out = {}
    for name, pid in pids.items():
        try:
            out[name] = proc_cpu_seconds(pid)
        except OSError:
            continue
    return out


def cpu_since(pids: dict[str, int], before: dict[str, float], events: int) -> dict[str, float]:
    """Server CPU microseconds per event since `before` (from `servers_cpu`)."""
    now = servers_cpu(pids)
    return {k: (now[k] - v) * 1e6 / max(events, 1) for k, v in before.items() if k in now}


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a live process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Collectors:
    """N `billing run usage-collector` processes in one consumer group, each with its own ops
    port (for `/metrics`) and log file."""

    def __init__(self, env: dict[str, str], count: int, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.ports = [free_port() for _ in range(count)]
        self.logs = [logs / f"collector-{i}.log" for i in range(count)]
        self.procs: list[subprocess.Popen[bytes]] = []
        for port, log in zip(self.ports, self.logs, strict=True):
            with log.open("wb") as out:
                self.procs.append(subprocess.Popen(  # noqa: S603 - fixed argv
                    [sys.executable, "-m", "services.cli", "run", "usage-collector"],
                    env={**env, "BILLING_OPS_PORT": str(port)}, cwd=ROOT,
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    def check_alive(self) -> None:
        """Raises RuntimeError (with the log's tail) when a collector has exited."""
        for proc, log in zip(self.procs, self.logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"a collector exited ({proc.returncode}):\n{tail}")

    def cpu_seconds(self) -> float:
        return sum(proc_cpu_seconds(p.pid) for p in self.procs)

    def peak_rss_mb(self) -> float:
        return max(peak_rss_mb(p.pid) for p in self.procs)

    def scrape(self) -> list[Samples]:
        """Each live collector's metrics (a collector that does not answer is left out)."""
        return [s for s in (scrape(port) for port in self.ports) if s is not None]

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM every collector; SIGKILL the ones still running after `grace` seconds."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fmt(value: Any, spec: str = ",.0f") -> str:
    """A figure for the report, or "n/a" when it could not be measured."""
    return "n/a" if value is None else format(value, spec)
