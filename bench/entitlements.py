"""Entitlement check benchmark (not a test): `GET /v1/tenants/{id}/entitlements/{meter}`.

Seeds 1,000 tenants (default) with a limits window each (the current month, a hard
`computations` limit and a soft `cpu_hours` one) and some usage, so every tenant has its
counters; starts the API (`billing run api`, uvicorn, one OS process) and sends N requests
(default 5,000) with a `super` API key over keep-alive HTTP connections, `--concurrency` at a
time, each for a random tenant and one of the two meters. Prints p50/p95/p99 latency and
requests/s. Target: p99 <= 10 ms (docs/limits.md).

Servers: BILLING_KAFKA_BOOTSTRAP_SERVERS and BILLING_MONGO_URI when set, otherwise an
embedded stack started in a temporary directory (and stopped afterwards).

    .venv/bin/python bench/entitlements.py [--tenants 1000] [--requests 5000] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts.plans import PlanLimit, UsageLimitsChanged, UsageLimitWindow  # noqa: E402
from contracts.usage import UsageRecorded  # noqa: E402
from services.api.keys import create_key  # noqa: E402
from services.common.mongo import database, make_client  # noqa: E402
from services.common.settings import CommonSettings  # noqa: E402
from services.devstack.ports import free_port  # noqa: E402
from services.usage_collector.adapters.limits_update import apply_limits  # noqa: E402
from services.usage_collector.adapters.store import ensure_indexes  # noqa: E402
from services.usage_collector.api import record_usage  # noqa: E402

METERS = ("computations", "cpu_hours")


def _usage(n: int, tenant: str, meter: str, at: datetime) -> UsageRecorded:
    return UsageRecorded.model_validate({
        "specversion": "1.0", "id": f"b{n}", "source": "bench", "type": "billing.usage",
        "subject": tenant, "time": at.isoformat(),
        "data": {"meter": meter, "quantity": str(n % 7 + 1), "service": "jobs"}})


async def seed(settings: CommonSettings, tenants: int) -> str:
    """Windows, counters and usage for `tenants` tenants; a super key's token."""
    client = make_client(settings)
    db = database(client, settings)
    await ensure_indexes(db)
    now = datetime.now(UTC)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (start + timedelta(days=32)).replace(day=1)
    limits = (PlanLimit(meter="computations", limit=Decimal(1000), hard=True),
              PlanLimit(meter="cpu_hours", limit=Decimal(500)))
    names = [f"tenant-{i:04d}" for i in range(tenants)]
    for name in names:
        await apply_limits(db, UsageLimitsChanged(tenant_id=name, version=1, windows=(
            UsageLimitWindow(period_start=start, period_end=end, limits=limits),)), now)
    events = [_usage(n, names[n % tenants], METERS[n % 2], now) for n in range(tenants * 4)]
    await record_usage(db, events)
    token = await create_key(db, role="super", name="entitlements bench")
    await client.close()
    return token


async def measure(base: str, token: str, tenants: int, requests: int,
                  concurrency: int) -> tuple[list[float], float]:
    """Latencies (seconds) of `requests` GETs, and the wall time they took."""
    rng = random.Random(7)
    paths = [f"/v1/tenants/tenant-{rng.randrange(tenants):04d}/entitlements/"
             f"{METERS[rng.randrange(2)]}" for _ in range(requests)]
    latencies: list[float] = []
    limits = httpx.Limits(max_keepalive_connections=concurrency, max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        for path in paths[:200]:  # warm-up: connections, key cache, server caches
            (await http.get(path)).raise_for_status()
        queue = iter(paths)

        async def worker() -> None:
            for path in queue:
                began = time.perf_counter()
                response = await http.get(path)
                latencies.append(time.perf_counter() - began)
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, time.perf_counter() - started


def wait_ready(base: str, api: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.poll() is not None:
            raise SystemExit(f"the API exited with {api.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)  # polling the server's start-up, not a synchronisation
    raise SystemExit("the API did not answer /healthz in time")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(args: argparse.Namespace, env: dict[str, str]) -> None:
    os.environ.update(env)
    settings = CommonSettings()
    began = time.perf_counter()
    token = asyncio.run(seed(settings, args.tenants))
    print(f"seeded {args.tenants} tenants (windows, counters, usage) in "
          f"{time.perf_counter() - began:.1f} s")
    port = free_port()
    # a platform service calls before each computation: far above the default per-key limit
    env = dict(env, BILLING_API_PORT=str(port), BILLING_API_HOST="127.0.0.1",
               BILLING_API_RATE_LIMIT="1000000/minute")
    api = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "api"], env=env,
                           cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, api)
        latencies, wall = asyncio.run(measure(base, token, args.tenants, args.requests,
                                              args.concurrency))
    finally:
        api.terminate()
        api.wait(30)
    ms = [x * 1000 for x in latencies]
    print(f"{len(ms)} requests, concurrency {args.concurrency}: "
          f"p50 {percentile(ms, 50):.2f} ms, p95 {percentile(ms, 95):.2f} ms, "
          f"p99 {percentile(ms, 99):.2f} ms, max {max(ms):.2f} ms; "
          f"{len(ms) / wall:,.0f} requests/s")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    env = dict(os.environ, BILLING_TOPIC_PREFIX=f"bench{tag}.", BILLING_MONGO_DB=f"bench_{tag}",
               BILLING_LOG_LEVEL="WARNING", PYTHONPATH=str(ROOT))
    if os.environ.get("BILLING_KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("BILLING_MONGO_URI"):
        main(args, env)
        return
    from services.devstack.stack import EmbeddedStack

    with tempfile.TemporaryDirectory() as tmp:
        stack = EmbeddedStack(Path(tmp))
        try:
            env.update(stack.up(timeout=90).env(stack.directory))
            main(args, env)
        finally:
            stack.down()


if __name__ == "__main__":
    run()
