"""Collectors as real OS processes (`billing run usage-collector`): two in one consumer group,
and one killed with SIGKILL in the middle of a stream, give exact totals."""

import os
import signal
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from services.common.settings import CommonSettings
from services.usage_collector.adapters.store import collector_stats
from tests.integration.test_usage_collector import T0, buckets, publish, usage
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

TENANTS = [f"tenant-{i}" for i in range(12)]


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {**env, "BILLING_USAGE_MAX_BATCH_EVENTS": "300", "BILLING_USAGE_MIN_BATCH_EVENTS": "50"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", "usage-collector"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


async def wait_aggregated(db: Any, want: int, proc_logs: list[Path]) -> dict[str, int]:
    """Poll until `want` distinct events are aggregated (redeliveries only add duplicates)."""

    async def reached() -> dict[str, int] | None:
        stats = await collector_stats(db)
        return stats if stats["aggregated"] >= want else None

    try:
        stats: dict[str, int] = await eventually(
            reached, what=f"{want} events aggregated", seconds=180
        )
    except AssertionError as exc:
        raise AssertionError([p.read_text()[-2000:] for p in proc_logs]) from exc
    return stats


def stream(first: int, count: int) -> list[tuple[bytes | None, bytes]]:
    """`count` events over 12 tenants and several hours; every 10th one published twice."""
    out: list[tuple[bytes | None, bytes]] = []
    for n in range(first, first + count):
        event = usage(n, tenant=TENANTS[n % 12], qty="0.25", at=T0 + timedelta(minutes=n % 300))
        out += [event, event] if n % 10 == 0 else [event]
    return out


def expected(count: int) -> dict[str, tuple[Decimal, int]]:
    want: dict[str, tuple[Decimal, int]] = {}
    for n in range(count):
        hour = (T0 + timedelta(minutes=n % 300)).strftime("%Y-%m-%dT%H")
        key = f"{TENANTS[n % 12]}|cpu_hours|web|{hour}"
        total, events = want.get(key, (Decimal(0), 0))
        want[key] = (total + Decimal("0.25"), events + 1)
    return want


async def test_two_collector_processes_in_one_group_give_exact_totals(
    common_settings: CommonSettings, mongo_db: Any, subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    procs = [start(subprocess_env, tmp_path / f"collector-{i}.log") for i in range(2)]
    try:
        for chunk in range(4):
            await publish(common_settings, stream(chunk * 500, 500))
        stats = await wait_aggregated(mongo_db, 2000, [tmp_path / "collector-0.log"])
    finally:
        codes = [stop(p) for p in procs]
    assert codes == [0, 0], (tmp_path / "collector-0.log").read_text()[-3000:]
    assert stats["aggregated"] == 2000 and stats["duplicates"] >= 200
    assert await buckets(mongo_db) == expected(2000)


async def test_a_collector_killed_mid_stream_and_restarted_gives_exact_totals(
    common_settings: CommonSettings, mongo_db: Any, subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    log = tmp_path / "collector.log"
    proc = start(subprocess_env, log)
    try:
        await publish(common_settings, stream(0, 1500))

        async def aggregating() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            return (await collector_stats(mongo_db))["aggregated"] > 0

        await eventually(aggregating, what="the first events aggregated", seconds=120,
                         interval=0.05)
        second = stream(1500, 1500)
        await publish(common_settings, second[:200])
        os.kill(proc.pid, signal.SIGKILL)  # in the middle of the stream
        proc.wait(timeout=30)
        await publish(common_settings, second[200:])
        mid = await collector_stats(mongo_db)
        assert mid["aggregated"] < 3000, "the kill came too late to test anything"
        proc = start(subprocess_env, log)
        stats = await wait_aggregated(mongo_db, 3000, [log])
    finally:
        code = stop(proc)
    assert code == 0, log.read_text()[-3000:]
    # redelivered records after the kill are counted as duplicates, never aggregated twice
    assert stats["aggregated"] == 3000
    assert stats["duplicates"] >= 300
    assert await buckets(mongo_db) == expected(3000)
