"""The usage collector worker (`billing run usage-collector`).

A raw aiokafka consumer loop rather than a FastStream subscriber, because exactness and speed
here need three things FastStream's per-message (or per-poll) acknowledgement does not give:
(1) offsets committed only after a MongoDB transaction that spans many polls, (2) the next
records consumed and merged in memory while that transaction is in flight, and (3) the
in-flight and pending work flushed and committed inside the rebalance callback before
partitions are released. FastStream's broker is still used to publish dead letters.

Pipeline: `getmany` -> `PendingBatch.take_records` (validate, merge per bucket) -> when no write is
in flight, the pending batch is sealed and written by a background task (one transaction)
-> offsets committed. When `usage_max_batch_events` records are pending while a write is in
flight, the loop waits for it (back-pressure). SIGTERM: stop consuming, flush, commit, leave
the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from contracts.topics import TOPIC_USAGE
from services.common.backoff import retry_forever
from services.common.deadletter import DeadLetter
from services.common.kafka import ensure_topics
from services.common.mongo import database, make_client
from services.common.ops import OpsServer, ops_app
from services.common.relay import outbox_relay
from services.common.worker import make_broker, mongo_answers
from services.usage_collector.adapters.dead_letters import KafkaDeadLetters
from services.usage_collector.adapters.metrics import (
    BATCH_SIZE,
    BUCKETS_WRITTEN,
    CONSUMER_LAG,
    DOCUMENTS_WRITTEN,
    EVENTS,
    RELEASES_ABANDONED,
    THRESHOLD_EVENTS,
    WRITE_RETRIES,
    WRITE_SECONDS,
    observe_lags,
)
from services.usage_collector.adapters.store import MongoUsageStore, ensure_indexes
from services.usage_collector.handlers import (
    BatchStore,
    DeadLetterSink,
    PendingBatch,
    write_batch,
)
from services.usage_collector.limits_app import subscribe_limits
from services.usage_collector.names import OUTBOX, SERVICE, WORKER
from services.usage_collector.settings import UsageSettings
from services.usage_collector.wire import Decoder

log = logging.getLogger(__name__)
_POLL_RECORDS = 5_000


class _ReleaseOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move: make durable what can be within the grace, give up the rest."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            await self.collector.release(self.collector.settings.usage_revoke_grace_seconds)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("usage partitions assigned: %s", sorted(tp.partition for tp in assigned))


class Collector:
    """Consumes `billing.usage.v1` in group `usage_group` and writes merged batches."""

    def __init__(self, settings: UsageSettings, store: BatchStore, dead: DeadLetterSink) -> None:
        self.settings = settings
        self.topic = settings.topic(TOPIC_USAGE)
        self.store = store
        self.dead = dead
        self.decoder = Decoder()  # kept across batches: its time cache stays warm
        self.pending = self._new_batch()
        self.consumer: AIOKafkaConsumer | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._next: dict[int, int] = {}
        self._lag_at = 0.0

    def _new_batch(self) -> PendingBatch:
        return PendingBatch(self.topic, decoder=self.decoder)

    def _make_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=s.group(s.usage_group),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_bytes=s.usage_fetch_max_bytes,
            max_partition_fetch_bytes=s.usage_max_partition_fetch_bytes,
            max_poll_records=_POLL_RECORDS,
            session_timeout_ms=int(s.usage_session_timeout_seconds * 1000),
            rebalance_timeout_ms=int(s.usage_rebalance_timeout_seconds * 1000),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then flush, commit and leave the group."""
        consumer = self.consumer = self._make_consumer()
        consumer.subscribe([self.topic], listener=_ReleaseOnRevoke(self))
        await consumer.start()
        try:
            while not stop.is_set():
                polled = await consumer.getmany(timeout_ms=100, max_records=_POLL_RECORDS)
                for tp, records in polled.items():
                    self.pending.take_records(tp.partition, records)
                    if records:
                        self._next[tp.partition] = records[-1].offset + 1
                await self._maybe_write()
                self._update_lag(consumer)
            await self.release(self.settings.shutdown_timeout_seconds)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()  # leaves the group
            self.consumer = None

    @property
    def ready(self) -> bool:
        """True while the consumer runs."""
        return self.consumer is not None

    async def _maybe_write(self) -> None:
        if self._inflight is not None and self._inflight.done():
            failed = None if self._inflight.cancelled() else self._inflight.exception()
            self._inflight = None
            if failed is not None:
                raise failed
        size = len(self.pending)
        if not size:
            return
        if self._inflight is None:
            age = time.monotonic() - self.pending.started
            if size >= self.settings.usage_min_batch_events or (
                age >= self.settings.usage_linger_seconds
            ):
                self._start_write()
        elif size >= self.settings.usage_max_batch_events:
            # back-pressure: merge no more until the write is done (or cancelled by a release)
            await asyncio.wait({self._inflight})
            await self._maybe_write()

    def _start_write(self) -> None:
        if not len(self.pending):
            return
        batch, self.pending = self.pending, self._new_batch()
        self._inflight = asyncio.create_task(self._write(batch))

    async def drain(self) -> None:
        """Write what is pending and wait for every write; offsets are committed after each."""
        if self._inflight is not None:
            await self._inflight
            self._inflight = None
        if len(self.pending):
            batch, self.pending = self.pending, self._new_batch()
            await self._write(batch)

    async def release(self, grace: float) -> None:
        """Before the partitions are given up (a rebalance, or stopping): wait up to `grace`
        seconds for the write in flight and write what is pending; past the grace, cancel the
        write (its transaction aborts) and drop the pending records.

        Nothing is lost either way: the offsets of what was not written are not committed, so
        the partition's next owner consumes those records again, and the processed ids of a
        write that did commit make them duplicates. The grace keeps a rebalance short even
        when a transaction waits on locks a killed collector's transaction still holds (the
        server keeps them until that transaction's lifetime limit, 60 s by default in
        MongoDB), so the group is never stuck waiting for this member to rejoin.
        """
        self._next.clear()
        if self._inflight is None and not len(self.pending):
            return
        drain = asyncio.create_task(self.drain())
        done, _ = await asyncio.wait({drain}, timeout=grace)
        if drain in done:
            if drain.exception() is not None:
                log.warning("usage batch not written before release: %r", drain.exception())
            self._inflight = None
            return
        drain.cancel()
        if self._inflight is not None:
            self._inflight.cancel()
        dropped = len(self.pending)
        self.pending = self._new_batch()
        self._inflight = None
        RELEASES_ABANDONED.inc()
        log.warning(
            "usage partitions released after %.1f s with a write still in flight: cancelled; "
            "%d pending records dropped (their offsets are not committed: redelivered)",
            grace, dropped,
        )

    async def _write(self, batch: PendingBatch) -> None:
        async with self._lock:
            started = time.perf_counter()
            result = await write_batch(batch, self.store, self.dead, self._commit)
            WRITE_SECONDS.observe(time.perf_counter() - started)
            observe_lags(result.samples, result.committed_at)
            for collection, documents in result.written:
                DOCUMENTS_WRITTEN.labels(collection=collection).inc(documents)
            BATCH_SIZE.observe(len(batch))
            EVENTS.labels(outcome="aggregated").inc(result.aggregated)
            EVENTS.labels(outcome="duplicate").inc(result.duplicates)
            BUCKETS_WRITTEN.inc(result.buckets)
            for threshold in result.thresholds:
                THRESHOLD_EVENTS.labels(threshold=str(threshold)).inc()
            if result.attempts > 1:
                WRITE_RETRIES.inc(result.attempts - 1)
            log.debug(
                "usage batch: %d records, %d aggregated, %d duplicates, %d dead, %d buckets, "
                "documents written %s", len(batch), result.aggregated, result.duplicates,
                len(batch.dead), result.buckets, dict(result.written),
            )

    async def _commit(self, offsets: dict[int, int]) -> None:
        consumer = self.consumer
        if consumer is None or not offsets:
            return
        assigned = consumer.assignment()
        wanted = {TopicPartition(self.topic, p): o for p, o in offsets.items()}
        mine = {tp: o for tp, o in wanted.items() if tp in assigned}
        if not mine:
            return
        try:
            await consumer.commit(mine)
        except KafkaError as exc:  # rebalanced meanwhile: the effect is durable, a redelivery
            log.warning("usage offset commit skipped: %s", exc)  # is de-duplicated

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_at < 1.0:
            return
        self._lag_at = now
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None and tp.partition in self._next:
                CONSUMER_LAG.labels(partition=str(tp.partition)).set(
                    max(0, high - self._next[tp.partition])
                )


async def run_collector(settings: UsageSettings, stop: asyncio.Event) -> None:
    """Run the collector with its ops endpoint (/metrics, /healthz, /readyz) until `stop`;
    beside it, the usage limits projection (`limits_app`) and the relay of the usage alerts
    outbox to `billing.usage-alerts.v1` (docs/limits.md)."""
    await ensure_topics(settings)
    client = make_client(settings)
    db = database(client, settings)
    await ensure_indexes(db)
    broker = make_broker(settings, name=WORKER)
    subscribe_limits(broker, settings, db, stop)
    relay = outbox_relay(broker, settings, db, OUTBOX, SERVICE)
    await broker.start()
    relaying = asyncio.create_task(relay.run(stop))
    publish_dead = KafkaDeadLetters(broker, settings, db)

    async def dead_letters(dead: list[DeadLetter]) -> None:
        # the platform's error policy: a dependency that does not answer is waited for (a
        # release cancels the wait; the batch is then redelivered)
        await retry_forever(lambda: publish_dead(dead), stop=None, service=SERVICE,
                            what="usage dead letters")

    collector = Collector(
        settings,
        MongoUsageStore(db, settings.usage_write_retry_max_seconds,
                        attempt_timeout=settings.usage_write_attempt_timeout_seconds),
        dead_letters,
    )

    async def ready() -> dict[str, bool]:
        return {"mongodb": await mongo_answers(client), "kafka": collector.ready}

    ops = OpsServer(ops_app(ready), settings.ops_host, settings.ops_port)
    await ops.start()
    # Modules, schemas and clients live as long as the process: move them out of the
    # collector's view so the collections the per-event garbage triggers stay cheap.
    gc.collect()
    gc.freeze()
    try:
        await collector.run(stop)
    finally:
        if not stop.is_set():  # the collector failed: the relay would otherwise run on
            relaying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relaying
        await ops.stop()
        await broker.stop()
        await client.close()
