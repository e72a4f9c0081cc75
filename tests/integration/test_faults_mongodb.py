"""MongoDB of the embedded stack killed with SIGKILL and started again (`restart_mongodb`)."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient

from contracts import TOPIC_USAGE
from services.common.codec import headers_for
from services.devstack.api import EmbeddedStack
from services.usage_collector.adapters.seen_ids import count_seen_ids
from services.usage_collector.adapters.store import collector_stats
from tests.support.fault_stack import logs_of, own_stack, worker_env
from tests.support.fault_workload import (
    every_subscription_past,
    publish,
    publish_round,
    running_workers,
    usage_event,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration
#: Usage events published just before MongoDB is killed, so the collector is writing.
BURST = 400
#: How long MongoDB stays down.
DOWN_SECONDS = 5.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with own_stack(tmp_path_factory.mktemp("faults-mongodb")) as started:
        yield started


def test_a_restarted_mongodb_keeps_every_committed_write_on_the_same_port(
    stack: EmbeddedStack,
) -> None:
    env = worker_env(stack)
    before = stack.status()["mongodb"]
    client: MongoClient[dict[str, object]] = MongoClient(
        env["BILLING_MONGO_URI"], serverSelectionTimeoutMS=20_000
    )
    try:
        db = client[env["BILLING_MONGO_DB"]]
        db.plain.insert_one({"_id": "written alone"})
        with client.start_session() as session, session.start_transaction():
            db.txn.insert_many([{"_id": n} for n in range(50)], session=session)

        stack.restart_mongodb(down_seconds=0.5)

        after = stack.status()["mongodb"]
        assert after["running"] and after["port"] == before["port"]
        assert after["pid"] != before["pid"]
        assert client.admin.command("hello")["isWritablePrimary"]
        assert db.plain.count_documents({}) == 1
        assert db.txn.count_documents({}) == 50
    finally:
        client.close()


def test_restarting_mongodb_of_a_stack_that_is_not_up_names_the_missing_server(
    tmp_path: Path,
) -> None:
    from services.devstack.api import StackError

    with pytest.raises(StackError, match="no MongoDB"):
        EmbeddedStack(tmp_path).restart_mongodb()


async def test_the_workers_ride_out_a_mongodb_restart_mid_stream_and_process_everything_once(
    stack: EmbeddedStack, tmp_path: Path,
) -> None:
    async with running_workers(stack, tmp_path / "logs") as run:
        settings, env, workers, db, all_done = (
            run.settings, run.env, run.workers, run.db, run.all_done)
        warm = await publish_round(settings, env, "warm")
        await eventually(lambda: all_done(warm), what="every worker's first round", seconds=120)
        rounds = [warm] + [await publish_round(settings, env, f"before-{i}") for i in range(3)]
        burst = await publish(settings, [
            (TOPIC_USAGE, f"burst-{n % 8}".encode(), usage_event(f"burst-{n}", f"burst-{n % 8}"),
             headers_for("UsageRecorded")) for n in range(BURST)
        ])  # fmt: skip
        mid = await collector_stats(db)
        assert mid["aggregated"] < BURST + len(rounds), "the restart came too late"
        restart = asyncio.create_task(asyncio.to_thread(stack.restart_mongodb, DOWN_SECONDS))
        rounds += [await publish_round(settings, env, f"during-{i}") for i in range(3)]
        assert not restart.done(), "MongoDB was back before the rounds meant for its outage"
        await restart
        rounds += [await publish_round(settings, env, f"after-{i}") for i in range(3)]

        try:
            for r in rounds:
                await eventually(lambda r=r: all_done(r), what=f"round {r.tag}", seconds=180)
            await every_subscription_past(settings, [*burst, *(s for r in rounds for s in r.sent)])
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{logs_of(workers)}") from exc
        n = len(rounds)
        stats = await collector_stats(db)  # redeliveries count as duplicates, never twice
        assert (stats["aggregated"], stats["dead_lettered"]) == (BURST + n, 0)
        assert await count_seen_ids(db) == BURST + n
        versions = await db["invoicer_tenants"].distinct("version")
        assert await db["invoicer_tenants"].count_documents({}) == n and versions == [1]
        assert await db["notifier_sent"].count_documents({}) == n
        assert await db["notifier_contacts"].count_documents({}) == n
        stripe_events = {"_id": {"$regex": "^payments.stripe-events:"}}
        assert await db["processed_events"].count_documents(stripe_events) == n
        assert not workers.dead(), logs_of(workers)
