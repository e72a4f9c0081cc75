"""Use cases of the collector: take in one poll of Kafka records, write one sealed batch.

`PendingBatch.take_records` is the hot path (one call per polled partition, no I/O). `write_batch`
makes a sealed batch durable in the order the reliability rules ask for: dead letters
published, then one MongoDB transaction, then the Kafka offsets committed; a crash between
any two steps replays the batch, which the transaction's processed ids make harmless
(docs/design.md#reliability).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from services.common.deadletter import DeadLetter, MessageSource
from services.usage_collector.acceptance import Rejected
from services.usage_collector.adapters.processed import dead_letter_id
from services.usage_collector.adapters.store import ApplyResult, BucketsFull
from services.usage_collector.buckets import BucketKey
from services.usage_collector.merge import BatchMerge
from services.usage_collector.wire import Decoder


def record_id(letter: DeadLetter) -> str:
    """The processed-record id that makes the dead-lettering of `letter` count once."""
    source = letter.source
    return dead_letter_id(source.topic, source.partition, source.offset)


def dead_record(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
    reason: str, detail: str,
) -> DeadLetter:
    """A consumed message that cannot be aggregated, with everything needed to replay it."""
    return DeadLetter(MessageSource(topic, partition, offset, key, value), reason, detail)


class KafkaRecord(Protocol):
    """The parts of a consumed record (aiokafka `ConsumerRecord`) the collector reads."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int: ...  # ms since the epoch: when the record was published


class Polled(NamedTuple):
    """What a batch keeps of one poll of one partition, for `PendingBatch.reject_buckets`:
    offsets, keys and values in parallel lists (ints and bytes, which the garbage collector
    does not track, rather than the consumer's record objects)."""

    partition: int
    offsets: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]


@dataclass
class PendingBatch:
    """Records consumed since the last write, merged per bucket.

    `offsets` maps partition -> next offset to commit once this batch is durable; `polled`
    keeps each poll's offsets, keys and values for `reject_buckets`.
    """

    topic: str
    merge: BatchMerge = field(default_factory=BatchMerge)
    dead: list[DeadLetter] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    records: int = 0
    started: float = field(default_factory=time.monotonic)
    decoder: Decoder = field(default_factory=Decoder)
    polled: list[Polled] = field(default_factory=list)

    def take_records(self, partition: int, records: Sequence[KafkaRecord]) -> None:
        """Validate and merge every record of one partition, in offset order (one poll's worth);
        an invalid record is kept for the dead-letter topic.

        Never raises on input: every failure becomes a `DeadLetter` with a reason code.
        """
        if not records:
            return
        self.polled.append(Polled(partition, [r.offset for r in records],
                                  [r.key for r in records], [r.value for r in records]))
        decode, add = self.decoder.decode, self.merge.add
        for r in records:
            try:
                add(decode(r.value, r.timestamp))
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
        self.dead.append(dead_record(self.topic, partition, offset, key, value, reason, detail))

    def reject_buckets(self, keys: set[BucketKey]) -> list[DeadLetter]:
        """Dead-letter (`quantity_out_of_range`) every record of this batch merged into one
        of `keys`, and merge the batch again without them; the new dead records.

        For buckets whose stored sum plus this batch's would not fit 34 digits (`BucketsFull`):
        rare, so the records are decoded again rather than remembered per event.
        """
        dead_at = {(d.source.partition, d.source.offset) for d in self.dead}
        new: list[DeadLetter] = []
        ids: set[str] = set()
        for partition, offsets, record_keys, values in self.polled:
            for offset, key, value in zip(offsets, record_keys, values, strict=True):
                if (partition, offset) in dead_at:
                    continue
                try:
                    sample = self.decoder.decode(value)
                except Rejected:
                    continue
                if sample.key in keys:
                    ids.add(sample.event_id)
                    new.append(dead_record(
                        self.topic, partition, offset, key, value, "quantity_out_of_range",
                        "the bucket's stored sum would exceed 34 digits"))
        duplicates = self.merge.duplicates - (len(new) - len(ids))  # now dead-lettered
        self.merge = self.merge.without(ids)
        self.merge.duplicates = duplicates
        self.dead.extend(new)
        return new

    def __len__(self) -> int:
        return self.records


class BatchStore(Protocol):
    """Where batches become durable (the MongoDB store, or a fake in tests)."""

    async def apply(self, merge: BatchMerge, dead_letter_ids: list[str]) -> ApplyResult: ...


DeadLetterSink = Callable[[list[DeadLetter]], Awaitable[None]]
Commit = Callable[[dict[int, int]], Awaitable[None]]


async def write_batch(
    batch: PendingBatch, store: BatchStore, dead_letters: DeadLetterSink, commit: Commit
) -> ApplyResult:
    """Make `batch` durable, then commit its offsets.

    Order: publish dead letters (at least once), one transaction (processed ids, buckets,
    counters: exactly once), commit offsets. When the store reports `BucketsFull`, the
    events of those buckets are dead-lettered too and the rest applied again. Raises only
    what `commit` raises after the transaction (the effect is durable then; a redelivery is
    de-duplicated).
    """
    if batch.dead:
        await dead_letters(batch.dead)
    while True:
        try:
            result = await store.apply(batch.merge, [record_id(d) for d in batch.dead])
            break
        except BucketsFull as full:  # each round removes at least one bucket: it ends
            await dead_letters(batch.reject_buckets(set(full.keys)))
    await commit(batch.offsets)
    return result
