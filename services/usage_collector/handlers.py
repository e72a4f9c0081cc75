"""Use cases of the collector: take in one Kafka record, write one sealed batch.

`PendingBatch.take_records` is the hot path (one call per polled partition, no I/O). `write_batch`
makes a sealed batch durable in the order the reliability rules ask for: dead letters
published, then one MongoDB transaction, then the Kafka offsets committed; a crash between
any two steps replays the batch, which the transaction's processed ids make harmless.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from services.usage_collector.adapters.store import ApplyResult, dead_letter_id
from services.usage_collector.domain import Rejected
from services.usage_collector.merge import BatchMerge
from services.usage_collector.wire import Decoder

SERVICE = "usage_collector"


@dataclass(frozen=True, slots=True)
class DeadRecord:
    """A consumed message that cannot be aggregated, with everything needed to replay it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    detail: str

    @property
    def record_id(self) -> str:
        """The processed-record id that makes its dead-lettering count once."""
        return dead_letter_id(self.topic, self.partition, self.offset)


class KafkaRecord(Protocol):
    """The parts of a consumed record (aiokafka `ConsumerRecord`) the collector reads."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass
class PendingBatch:
    """Records consumed since the last write, merged per bucket.

    `offsets` maps partition -> next offset to commit once this batch is durable.
    """

    topic: str
    merge: BatchMerge = field(default_factory=BatchMerge)
    dead: list[DeadRecord] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    records: int = 0
    started: float = field(default_factory=time.monotonic)
    decoder: Decoder = field(default_factory=Decoder)

    def take(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        """Validate and merge one record; an invalid one is kept for the dead-letter topic.

        Never raises on input: every failure becomes a `DeadRecord` with a reason code.
        """
        self.records += 1
        self.offsets[partition] = offset + 1
        try:
            self.merge.add(self.decoder.decode(value))
        except Exception as exc:
            self._dead(partition, offset, key, value, exc)

    def take_records(self, partition: int, records: Sequence[KafkaRecord]) -> None:
        """`take` every record of one partition, in offset order (one poll's worth)."""
        if not records:
            return
        decode, add = self.decoder.decode, self.merge.add
        for r in records:
            try:
                add(decode(r.value))
            except Exception as exc:
                self._dead(partition, r.offset, r.key, r.value, exc)
        self.records += len(records)
        self.offsets[partition] = records[-1].offset + 1

    def _dead(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None, exc: Exception
    ) -> None:
        if isinstance(exc, Rejected):
            reason, detail = exc.reason, exc.detail
        else:  # defensive: bad input must never kill the worker
            reason, detail = "unprocessable", repr(exc)
        self.dead.append(DeadRecord(self.topic, partition, offset, key, value, reason, detail))

    def __len__(self) -> int:
        return self.records


class BatchStore(Protocol):
    """Where batches become durable (the MongoDB store, or a fake in tests)."""

    async def apply(self, merge: BatchMerge, dead_letter_ids: list[str]) -> ApplyResult: ...


DeadLetterSink = Callable[[list[DeadRecord]], Awaitable[None]]
Commit = Callable[[dict[int, int]], Awaitable[None]]


async def write_batch(
    batch: PendingBatch, store: BatchStore, dead_letters: DeadLetterSink, commit: Commit
) -> ApplyResult:
    """Make `batch` durable, then commit its offsets.

    Order: publish dead letters (at least once), one transaction (processed ids, buckets,
    counters: exactly once), commit offsets. Raises only what `commit` raises after the
    transaction (the effect is durable then; a redelivery is de-duplicated).
    """
    if batch.dead:
        await dead_letters(batch.dead)
    result = await store.apply(batch.merge, [d.record_id for d in batch.dead])
    await commit(batch.offsets)
    return result
