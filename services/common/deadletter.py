"""The one dead-letter path: where a message came from (`MessageSource`), the `DeadLettered`
event built from it, and publishing that event with its count.

A `DeadLetter` is a `MessageSource` with a reason. Every worker dead-letters through
`publish_dead_letter` (the FastStream workers' runtime, the usage collector's batches) or
writes `dead_letter_event(...)` into its outbox in the same transaction as its state (the
notifier's refused emails) and then counts it with `count_dead_letter`. The policy:
docs/design.md#reliability.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from contracts import TOPIC_DEAD_LETTER, DeadLettered
from services.common.codec import encode
from services.common.kafka import dead_letter
from services.common.metrics import DEAD_LETTERS
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)
#: Publishes pre-encoded bytes: (real topic, key, value, headers).
PublishRaw = Callable[[str, bytes, bytes, list[tuple[str, bytes]]], Awaitable[object]]


class ConsumedRecord(Protocol):
    """The parts of a consumed record (aiokafka `ConsumerRecord`) a dead letter keeps."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class MessageSource:
    """Where a consumed message came from, with its bytes: the real topic name, partition,
    offset, key, value and headers (enough to replay it byte for byte).

    The default (no topic, partition and offset -1) stands for "not from Kafka" (a direct call
    in tests or tools)."""

    topic: str = ""
    partition: int = -1
    offset: int = -1
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, record: ConsumedRecord) -> MessageSource:
        """The source of an aiokafka `ConsumerRecord` (or anything shaped like one)."""
        raw_headers: Sequence[tuple[str, bytes]] = getattr(record, "headers", None) or ()
        return cls(record.topic, record.partition, record.offset, record.key, record.value,
                   tuple((k, bytes(v)) for k, v in raw_headers))


#: The source of a message that did not come from Kafka (a direct call in tests or tools).
NOT_FROM_KAFKA = MessageSource()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that cannot be processed: where it came from, a short machine-readable
    `reason` (`invalid_json`, `forbidden`, `internal_error`, ...) and a human `detail`."""

    source: MessageSource
    reason: str
    detail: str = ""


def dead_letter_event(service: str, letter: DeadLetter) -> DeadLettered:
    """The `DeadLettered` event of `letter` (original bytes kept as UTF-8 text or base64;
    `detail` cut to 2,000 characters)."""
    source = letter.source
    return dead_letter(
        service=service, topic=source.topic, partition=source.partition, offset=source.offset,
        key=source.key, value=source.value, reason=letter.reason, detail=letter.detail,
    )


def count_dead_letter(service: str, letter: DeadLetter) -> None:
    """Count one dead letter in `billing_dead_letters_total{service, reason}` and log it."""
    DEAD_LETTERS.labels(service=service, reason=letter.reason).inc()
    source = letter.source
    log.warning(
        "dead-lettered: %s %s", letter.reason, letter.detail[:200],
        extra={"service": service, "topic": source.topic, "partition": source.partition,
               "offset": source.offset},
    )


async def publish_dead_letter(
    publish: PublishRaw, settings: CommonSettings, service: str, letter: DeadLetter
) -> DeadLettered:
    """Publish the `DeadLettered` event of `letter` on the dead-letter topic (keyed like the
    original message, else by `service`), then count it. Returns the event.

    Raises what `publish` raises (a broker outage: the caller retries; nothing is counted)."""
    event = dead_letter_event(service, letter)
    body, headers = encode(event)
    key = (event.key or service).encode()
    await publish(settings.topic(TOPIC_DEAD_LETTER), key, body, headers)
    count_dead_letter(service, letter)
    return event


def describe_exception(exc: BaseException) -> str:
    """`Type: message at file:line in function` (the traceback's last frame): the `detail`
    of an `internal_error` dead letter."""
    frame: Any = None
    tb = exc.__traceback__
    while tb is not None:
        frame, tb = tb, tb.tb_next
    where = ""
    if frame is not None:
        code = frame.tb_frame.f_code
        where = f" at {code.co_filename}:{frame.tb_lineno} in {code.co_name}"
    return f"{type(exc).__name__}: {exc}{where}"
