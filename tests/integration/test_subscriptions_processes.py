"""The invoicer worker as a real OS process (`billing run invoicer`) killed with SIGKILL while it
applies subscription commands (each published twice): after a restart every command took
effect exactly once (one configuration version per change, one fact per change in the outbox)."""

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from contracts import TOPIC_TENANT_CONFIG
from services.common.kafka import ensure_topics
from services.common.signing import sign
from services.common.worker import make_broker, publish_event
from services.invoicer.adapters.subscriptions import SUBSCRIPTIONS
from services.invoicer.names import OUTBOX
from services.invoicer.settings import InvoicerSettings
from tests.integration.test_invoicer_support import open_store, utc
from tests.integration.test_subscriptions_support import PRO, STARTER, add_plans, request
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
TENANTS = [f"tenant-{i:02d}" for i in range(20)]


def start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", "invoicer"],
            env={**env, "BILLING_INVOICER_CYCLE_INTERVAL_SECONDS": "0"},
            stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)


async def test_a_worker_killed_mid_stream_applies_each_subscription_command_once(
    subprocess_env: dict[str, str], tmp_path: Path,
) -> None:
    settings = InvoicerSettings()
    await ensure_topics(settings)
    key = settings.signing_key()
    log = tmp_path / "invoicer.log"
    async with open_store(settings) as store:
        await add_plans(store, STARTER, PRO)
        proc = start(subprocess_env, log)
        try:
            async with make_broker(settings, name="test") as broker:
                for tenant in TENANTS:
                    commands = [sign(request("start", utc(2026, 4, 1), "starter", tenant=tenant),
                                     key),
                                sign(request("change", utc(2026, 4, 11), "pro", tenant=tenant),
                                     key)]
                    for command in commands:
                        for _ in range(2):  # every command delivered twice
                            await publish_event(broker, settings, command,
                                                TOPIC_TENANT_CONFIG, tenant)

            async def some_applied() -> bool:
                return await store.db[SUBSCRIPTIONS].count_documents({}) >= 3

            await eventually(some_applied, what="a few subscriptions", seconds=120)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc = start(subprocess_env, log)

            async def all_upgraded() -> bool:
                return await store.db[SUBSCRIPTIONS].count_documents(
                    {"plan.code": "pro"}) == len(TENANTS)

            try:
                await eventually(all_upgraded, what="every tenant on pro", seconds=180)
            except AssertionError as exc:
                raise AssertionError(log.read_text()[-3000:]) from exc
        finally:
            stop(proc)
        configs: list[dict[str, Any]] = await store.configs.find({}).to_list()
        assert sorted(d["tenant_id"] for d in configs) == sorted(TENANTS * 2)
        facts = await store.db[OUTBOX].find({"type": "SubscriptionChanged"}).to_list()
        assert sorted(f["key"] for f in facts) == sorted(TENANTS * 2)
        assert await store.db[OUTBOX].count_documents(
            {"type": "UsageLimitsChanged"}) == 2 * len(TENANTS)
