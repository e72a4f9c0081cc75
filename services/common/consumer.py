"""The consumer runtime of the FastStream workers (invoicer, payments, notifier): one subscriber
helper and one error policy (docs/design.md#reliability).

    subscribe(broker, settings, service="invoicer", topic=TOPIC_PAYMENT, group="invoicer",
              handlers={PaymentSucceeded: on_paid, PaymentRefunded: on_refund}, stop=stop)

Each message is decoded once here: the `event-type` header picks the contract model and the
handler registered for it receives the validated model and the message's `MessageSource`.
Then:

    outcome of decode / handler          what happens                        offset
    type this subscriber does not take   counted `ignored`                   committed
    not JSON, fails its contract,        dead letter with the reason         committed
      unknown event type, PermanentError
      (incl. InvalidMessage, Forbidden),
      pydantic ValidationError
    RetryableError (incl.                retried in place, capped exponential
      DependencyUnavailable)             back-off with jitter, while it lasts  after success
    stop requested while retrying        handler given up                    NOT committed
    any other exception                  dead letter `internal_error` with     committed
                                         type, message and last frame

Retrying never blocks the event loop, so the ops endpoint keeps answering. A dead letter that
cannot be published (broker down) is retried the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from contracts.base import Contract
from services.common.backoff import Stopped, retry_forever
from services.common.codec import decode
from services.common.deadletter import (
    DeadLetter,
    MessageSource,
    PublishRaw,
    describe_exception,
    publish_dead_letter,
)
from services.common.errors import InvalidMessage, PermanentError
from services.common.metrics import MESSAGES
from services.common.settings import CommonSettings

log = logging.getLogger(__name__)
#: A use case for one contract model, given the validated event and where it came from (for
#: a dead letter the handler writes itself); its return value is logged at debug level.
Handler = Callable[[Any, MessageSource], Awaitable[object]]


def raw_body(message: Any) -> bytes:
    """FastStream decoder that leaves the body as bytes: the runtime decodes it (a body that
    is not JSON is dead-lettered there, never retried)."""
    return bytes(message.body)


async def process(
    source: MessageSource, handlers: Mapping[type[Contract], Handler], *, service: str,
    publish: PublishRaw, settings: CommonSettings, stop: asyncio.Event | None,
    base: float | None = None, cap: float | None = None,
) -> str:
    """Decode the message at `source`, run its handler and apply the error policy (module
    docstring). Returns the outcome: `processed`, `ignored` or `dead_lettered`.

    `base`/`cap` (seconds) default to `settings.retry_base_seconds`/`retry_cap_seconds`.
    Raises `Stopped` when `stop` is set while retrying: the message was not handled and its
    offset must not be committed.
    """
    base = settings.retry_base_seconds if base is None else base
    cap = settings.retry_cap_seconds if cap is None else cap
    where = f"{service} {source.topic}:{source.partition}@{source.offset}"
    try:
        event = decode(source.value, list(source.headers), list(handlers))
    except InvalidMessage as exc:
        return await _dead(source, exc.reason, exc.detail, service, publish, settings, stop,
                           base, cap)
    if event is None:
        MESSAGES.labels(service=service, outcome="ignored").inc()
        return "ignored"
    handler = handlers[type(event)]
    try:
        result = await retry_forever(lambda: handler(event, source), stop=stop, service=service,
                                     what=f"{type(event).__name__} at {where}",
                                     base=base, cap=cap)
    except Stopped:
        raise
    except PermanentError as exc:
        reason, detail = exc.reason, exc.detail
    except ValidationError as exc:
        reason, detail = "validation_error", str(exc)
    except Exception as exc:  # a bug must not block its partition
        log.exception("%s: %s failed unexpectedly", where, type(event).__name__)
        reason, detail = "internal_error", describe_exception(exc)
    else:
        MESSAGES.labels(service=service, outcome="processed").inc()
        log.debug("%s: %s -> %s", where, type(event).__name__, result)
        return "processed"
    return await _dead(source, reason, detail, service, publish, settings, stop, base, cap)


async def _dead(
    source: MessageSource, reason: str, detail: str, service: str, publish: PublishRaw,
    settings: CommonSettings, stop: asyncio.Event | None, base: float, cap: float,
) -> str:
    await retry_forever(
        lambda: publish_dead_letter(publish, settings, service,
                                    DeadLetter(source, reason, detail)),
        stop=stop, service=service, what=f"dead letter of {source.topic}@{source.offset}",
        base=base, cap=cap,
    )
    MESSAGES.labels(service=service, outcome="dead_lettered").inc()
    return "dead_lettered"


def subscribe(
    broker: KafkaBroker, settings: CommonSettings, *, service: str, topic: str, group: str,
    handlers: Mapping[type[Contract], Handler], publish: PublishRaw,
    stop: asyncio.Event | None = None, base: float | None = None, cap: float | None = None,
) -> None:
    """Subscribe consumer group `group` (namespaced by settings) to contract topic `topic`,
    dispatching each message to the handler of its contract model (`process`).

    Offsets are committed once `process` returned; on `Stopped` (shutdown during an outage)
    the message is handed back unacknowledged and redelivered later. `publish` sends the dead
    letters (raising `DependencyUnavailable` when the broker does not answer)."""
    accept = dict(handlers)

    async def on_message(body: bytes, message: KafkaMessage) -> None:
        source = MessageSource.of(message.raw_message)  # type: ignore[arg-type]
        await process(source, accept, service=service, publish=publish, settings=settings,
                      stop=stop, base=base, cap=cap)

    on_message.__name__ = f"on_{topic.replace('.', '_').replace('-', '_')}"
    subscriber = broker.subscriber(
        settings.topic(topic), group_id=settings.group(group), auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR, decoder=raw_body,
    )
    subscriber(on_message)
