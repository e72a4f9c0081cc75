"""Repeated SIGKILL of usage collectors while a trace is imported: do the totals stay exact?

Two collectors share one consumer group. A Bitbrains-format trace is imported, then one month
of it again (every event of that month a pure duplicate). Every `--every` seconds one
collector, chosen at random, gets SIGKILL and a new one starts at once (as an orchestrator
would restart it), `--kills` times. The script then waits until the group has consumed and
committed everything, and checks:

- events aggregated = distinct events of the trace, dead-lettered = 0;
- per tenant and meter, the stored quantity and event count equal the sums this script
  computes itself from the CSV rows (distinct event ids, `Decimal`);
- the time from the last kill until everything was aggregated and committed.

It runs on the embedded stack (`billing dev up`, or starts its own in `--stack`), in its own
database and topic prefix. Exit code 0 when exact, 1 otherwise; `--json` prints the figures.

    .venv/bin/python bench/collector_kills.py --tenants T.json --trace DIR --again 2013-8 \\
        --kills 10 --every 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.topics import TOPIC_USAGE
from services.common.mongo import database, make_client
from services.common.settings import CommonSettings
from services.devstack.api import EmbeddedStack
from services.usage_collector.api import collector_stats, import_bitbrains
from services.usage_collector.importer import trace_files
from services.usage_collector.names import WORKER
from services.usage_collector.trace import BadRow, convert_row, load_owners, usage_events

ROOT = Path(__file__).resolve().parents[1]


def expected_totals(trace: Path, tenants: Path) -> tuple[int, dict[tuple[str, str], Decimal]]:
    """Distinct events and (tenant, meter) -> summed quantity, from the CSV rows."""
    owners = load_owners(tenants)
    seen: set[str] = set()
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for path in trace_files(trace):
        owner = owners.get(path.stem)
        if owner is None:
            continue
        with path.open(encoding="utf-8", errors="replace") as lines:
            next(lines, None)
            for line in lines:
                if not line.strip():
                    continue
                try:
                    row = convert_row(line)
                except BadRow:
                    continue
                for event in usage_events(path.stem, owner, row):
                    if event["id"] in seen:
                        continue
                    seen.add(event["id"])
                    sums[(owner.tenant_id, event["data"]["meter"])] += Decimal(
                        event["data"]["quantity"])
    return len(seen), dict(sums)


async def stored_totals(settings: CommonSettings) -> tuple[int, dict[tuple[str, str], Decimal]]:
    """Events counted in the buckets and (tenant, meter) -> stored sum."""
    client = make_client(settings)
    try:
        db = database(client, settings)
        count, sums = 0, defaultdict(Decimal)
        async for doc in db["usage_aggregates"].find({}, {"tenant_id": 1, "meter": 1,
                                                           "sum": 1, "count": 1}):
            count += int(doc["count"])
            sums[(doc["tenant_id"], doc["meter"])] += Decimal(str(doc["sum"]))
        return count, dict(sums)
    finally:
        await client.close()


async def stats(settings: CommonSettings) -> dict[str, int]:
    client = make_client(settings)
    try:
        return await collector_stats(database(client, settings))
    finally:
        await client.close()


async def uncommitted(settings: CommonSettings) -> int:
    """Messages of the usage topic past the group's committed offsets."""
    topic = settings.topic(TOPIC_USAGE)
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                             group_id=settings.group(WORKER), enable_auto_commit=False)
    await probe.start()
    try:
        parts = probe.partitions_for_topic(topic) or set()
        if not parts:
            await probe._client.force_metadata_update()  # noqa: SLF001
            parts = probe.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        probe.assign(tps)
        for tp in tps:
            await probe.seek_to_end(tp)
        lag = 0
        for tp in tps:
            end = await probe.position(tp)
            lag += max(0, end - ((await probe.committed(tp)) or 0))
        return lag
    finally:
        await probe.stop()


class Collectors:
    """`billing run usage-collector` processes, killed and replaced on demand."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.started = env, logs, 0
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"collector-{self.started}.log", "wb")  # noqa: SIM115
        self.started += 1
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "services.cli", "run", "usage-collector"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def kill_one(self, rng: random.Random) -> None:
        victim = rng.choice(self.procs)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.procs.remove(victim)
        self.start()

    def stop(self, grace: float) -> list[float]:
        """SIGTERM each; seconds each took to exit (SIGKILL after `grace`: reported as inf)."""
        took = []
        for proc in self.procs:
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
                took.append(round(time.monotonic() - t0, 1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                took.append(float("inf"))
        return took


async def main(args: argparse.Namespace) -> int:
    stack_env: dict[str, str] = {}
    stack = None
    if args.stack:
        stack = EmbeddedStack(Path(args.stack))
        stack_env = stack.up(90.0).env(stack.directory)
    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, **stack_env, "BILLING_MONGO_DB": f"kills_{tag}",
           "BILLING_TOPIC_PREFIX": f"k{tag}.", "BILLING_OPS_PORT": "0",
           "BILLING_LOG_JSON": "false", "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    settings = CommonSettings()
    expected, sums = expected_totals(Path(args.trace), Path(args.tenants))
    rng = random.Random(args.random_state)
    collectors = Collectors(env, Path(args.logs) / tag)
    collectors.start()
    collectors.start()

    async def imports() -> None:
        await import_bitbrains(settings, Path(args.trace), Path(args.tenants), progress=False)
        if args.again:
            again = Path(args.logs) / tag / "again"
            (again / args.again).mkdir(parents=True, exist_ok=True)
            for f in (Path(args.trace) / args.again).glob("*.csv"):
                (again / args.again / f.name).symlink_to(f.resolve())
            await import_bitbrains(settings, again, Path(args.tenants), progress=False)

    importing = asyncio.create_task(imports())
    started = time.monotonic()
    for _ in range(args.kills):
        await asyncio.sleep(args.every)
        collectors.kill_one(rng)
        print(f"{time.monotonic() - started:6.1f}s kill, {collectors.started} started",
              flush=True)
    last_kill = time.monotonic()
    await importing
    deadline = last_kill + args.deadline
    recovered = None
    while time.monotonic() < deadline:
        now = await stats(settings)
        if now["aggregated"] >= expected and await uncommitted(settings) == 0:
            recovered = time.monotonic() - last_kill
            break
        await asyncio.sleep(1.0)
    final = await stats(settings)
    count, stored = await stored_totals(settings)
    exits = collectors.stop(args.stop_grace)
    if stack is not None and not args.keep_stack:
        stack.down()
    exact = (recovered is not None and final["aggregated"] == expected and count == expected
             and final["dead_lettered"] == 0 and stored == sums)
    report: dict[str, Any] = {
        "kills": args.kills, "every_seconds": args.every, "collectors_started": collectors.started,
        "expected_events": expected, "aggregated": final["aggregated"],
        "events_in_buckets": count, "duplicates": final["duplicates"],
        "dead_lettered": final["dead_lettered"],
        "sums_equal": stored == sums,
        "recovered_seconds_after_last_kill": None if recovered is None else round(recovered, 1),
        "sigterm_exit_seconds": exits, "exact": exact,
    }
    print(json.dumps(report, indent=2) if args.json else report)
    return 0 if exact else 1


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tenants", required=True)
    p.add_argument("--trace", required=True)
    p.add_argument("--again", default="", help="a month folder of the trace to import twice")
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--every", type=float, default=8.0)
    p.add_argument("--random-state", type=int, default=1)
    p.add_argument("--deadline", type=float, default=600.0, help="seconds after the last kill")
    p.add_argument("--stop-grace", type=float, default=30.0)
    p.add_argument("--stack", default="", help="start an embedded stack in this directory")
    p.add_argument("--keep-stack", action="store_true")
    p.add_argument("--logs", default=".billing/bench-kills")
    p.add_argument("--json", action="store_true")
    sys.exit(asyncio.run(main(p.parse_args())))


if __name__ == "__main__":
    cli()
