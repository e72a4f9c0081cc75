"""A collector killed in the middle of a transaction must not stall the consumer group.

MongoDB keeps a killed client's open transaction, and its write locks, until the
transaction's lifetime limit (60 s by default); every batch that touches the same documents
meanwhile gets `WriteConflict`. A collector whose write waits on such a lock must still give
its partitions up promptly when the group rebalances, and must still stop promptly on
SIGTERM; the records it did not write are redelivered and counted exactly once.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from services.common.settings import CommonSettings
from tests.integration.test_usage_collector import publish
from tests.integration.test_usage_processes import TENANTS, start, stream, wait_aggregated
from tests.support.polling import wait_until

pytestmark = pytest.mark.integration

#: Opens a transaction that writes what every collector batch writes (a seen-ids document and the
#: tenants' usage sequences), says so, and waits to be killed.
HOLDER = """
import sys, time
from pymongo import MongoClient
client = MongoClient(sys.argv[1])
db = client[sys.argv[2]]
session = client.start_session()
session.start_transaction()
db.usage_seen_ids.insert_one({"_id": "lock-holder"}, session=session)
for tenant in sys.argv[3:]:
    db.usage_sequences.update_one({"_id": tenant}, {"$inc": {"seq": 1}}, upsert=True,
                                  session=session)
print("holding", flush=True)
time.sleep(600)
"""


def kill_while_holding_locks(settings: CommonSettings, tenants: list[str]) -> None:
    """Leave a transaction open by a SIGKILLed client, as a collector killed mid-batch does."""
    holder = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-c", HOLDER, settings.mongo_uri, settings.mongo_db, *tenants],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == b"holding"
    holder.send_signal(signal.SIGKILL)
    holder.wait()


def assigned_lines(log: Path) -> int:
    return log.read_text().count("usage partitions assigned") if log.exists() else 0


async def test_a_rebalance_and_a_stop_are_prompt_while_a_dead_transaction_holds_locks(
    common_settings: CommonSettings, mongo_db: Any, subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    env = {**subprocess_env, "BILLING_USAGE_REVOKE_GRACE_SECONDS": "2",
           "BILLING_SHUTDOWN_TIMEOUT_SECONDS": "5"}
    logs = [tmp_path / "collector-a.log", tmp_path / "collector-b.log"]
    first = start(env, logs[0])
    await publish(common_settings, stream(0, 200))
    await wait_aggregated(mongo_db, 200, logs[:1])

    kill_while_holding_locks(common_settings, TENANTS)
    locked_at = time.monotonic()
    await publish(common_settings, stream(200, 300))  # collector A's batch now waits on locks
    wait_until(lambda: "WriteConflict" in logs[0].read_text(), what="A's write conflicts",
               seconds=30)

    second = start(env, logs[1])  # the group rebalances while A's write waits
    wait_until(lambda: assigned_lines(logs[1]) >= 1, what="B gets partitions", seconds=40)
    rebalanced_after = time.monotonic() - locked_at
    # the dead transaction holds its locks for 60 s: a member that waited for its write
    # before giving partitions up would keep the group from rebalancing until then
    assert rebalanced_after < 45, (rebalanced_after, logs[0].read_text()[-3000:])
    assert "released after" in logs[0].read_text()

    stopped_at = time.monotonic()
    first.send_signal(signal.SIGTERM)  # A may still be waiting on the locks: it must stop
    assert first.wait(timeout=30) == 0, logs[0].read_text()[-3000:]
    assert time.monotonic() - stopped_at < 20

    stats = await wait_aggregated(mongo_db, 500, logs)  # once the dead transaction expires
    assert stats["aggregated"] == 500 and stats["dead_lettered"] == 0
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
