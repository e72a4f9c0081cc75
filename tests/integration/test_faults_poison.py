"""Poison messages (`services.devstack.poison`): each is refused by the code that reads its
topic with the reason it names, and, published to running workers, each is dead-lettered with
that reason while the valid message after it on its partition is processed."""

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts import (
    ALL_EVENTS,
    TOPIC_DEAD_LETTER,
    TOPIC_INVOICE,
    TOPIC_PAYMENT,
    TOPIC_STRIPE_EVENTS,
    TOPIC_TENANT,
    TOPIC_TENANT_CONFIG,
    TOPIC_USAGE,
    TOPIC_USAGE_ALERTS,
    BillingConfigApplied,
    BillingConfigSubmitted,
    InvoiceIssued,
    InvoiceStatusChanged,
    PaymentFailed,
    PaymentRefunded,
    PaymentSucceeded,
    StripeEventReceived,
)
from contracts.base import Contract
from contracts.plans import UsageLimitsChanged, UsageThresholdReached
from services.common.codec import decode
from services.common.errors import InvalidMessage
from services.common.settings import CommonSettings
from services.demo.topics import read_topic
from services.devstack.api import (
    POISON_TENANT,
    EmbeddedStack,
    Poison,
    poison_messages,
    publish_poison,
)
from services.invoicer.api import CONSUMES as INVOICER
from services.notifier.api import CONSUMES as NOTIFIER
from services.payments.api import CONSUMES as PAYMENTS
from services.usage_collector.acceptance import Rejected
from services.usage_collector.api import CONSUMES as COLLECTOR
from services.usage_collector.wire import Decoder
from tests.support.fault_stack import logs_of, own_stack
from tests.support.fault_workload import (
    SUBSCRIPTIONS,
    Running,
    every_subscription_past,
    publish_round,
    running_workers,
)
from tests.support.polling import eventually

#: What each consumer of a topic accepts (one entry per consumer).
ACCEPTED: dict[str, list[list[type[Contract]]]] = {
    TOPIC_TENANT_CONFIG: [[BillingConfigSubmitted]],
    TOPIC_PAYMENT: [[PaymentSucceeded, PaymentFailed, PaymentRefunded]],
    TOPIC_INVOICE: [[InvoiceIssued], [InvoiceIssued, InvoiceStatusChanged]],
    TOPIC_STRIPE_EVENTS: [[StripeEventReceived]],
    TOPIC_TENANT: [[BillingConfigApplied], [UsageLimitsChanged]],
    TOPIC_USAGE_ALERTS: [[UsageThresholdReached]],
}
def takers(poison: Poison) -> list[list[type[Contract]]]:
    """The consumers of the poison's topic that take its event type (the others skip it)."""
    name = dict(poison.headers).get("event-type", b"").decode()
    known = name in {c.__name__ for c in ALL_EVENTS}
    return [accept for accept in ACCEPTED[poison.topic]
            if not known or name in {c.__name__ for c in accept}]


#: Reasons only the handler can give: the message itself is a valid contract.
HANDLER_REASONS = {"forbidden", "unknown_invoice"}


pytestmark = pytest.mark.integration


def test_every_consumed_topic_has_poison() -> None:
    consumed = {topic for topic, _ in (*INVOICER, *NOTIFIER, *PAYMENTS, *COLLECTOR)}
    assert consumed == {p.topic for p in poison_messages()}
    assert len({p.reason for p in poison_messages()}) >= 5


@pytest.mark.parametrize("poison", poison_messages(), ids=lambda p: f"{p.topic}-{p.reason}")
def test_each_poison_message_is_refused_with_its_reason(poison: Poison) -> None:
    if poison.topic == TOPIC_USAGE:
        with pytest.raises(Rejected) as rejected:
            Decoder().decode(poison.value)
        assert rejected.value.reason == poison.reason
        return
    for accept in takers(poison):
        if poison.reason in HANDLER_REASONS:
            assert decode(poison.value, poison.headers, accept) is not None
            continue
        with pytest.raises(InvalidMessage) as invalid:
            decode(poison.value, poison.headers, accept)
        assert invalid.value.reason == poison.reason


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with own_stack(tmp_path_factory.mktemp("faults-poison")) as started:
        yield started


def expected_letters(
    settings: CommonSettings, poison: list[Poison]
) -> Counter[tuple[str, str, str]]:
    """(real topic, reason, key) of every dead letter `poison` must cause: one per message and
    consumer group of its topic."""
    groups = Counter(topic for topic, _ in SUBSCRIPTIONS)
    want: Counter[tuple[str, str, str]] = Counter()
    for p in poison:
        want[(settings.topic(p.topic), p.reason, p.key.decode())] += (
            len(takers(p)) if p.topic in ACCEPTED else groups[p.topic])
    return want


def read_by_faststream(p: Poison) -> bool:
    """Not JSON, on a topic payments or the notifier read through FastStream's own decoder."""
    try:
        json.loads(p.value)
    except ValueError:
        return p.topic in (TOPIC_INVOICE, TOPIC_STRIPE_EVENTS, TOPIC_TENANT)
    return False


async def test_each_poison_message_is_dead_lettered_and_its_partition_moves_on(
    stack: EmbeddedStack, tmp_path: Path,
) -> None:
    await poison_and_neighbours(
        stack, tmp_path, [p for p in poison_messages() if not read_by_faststream(p)]
    )


async def test_poison_that_is_not_json_is_dead_lettered_by_faststream_subscribers(
    stack: EmbeddedStack, tmp_path: Path,
) -> None:
    await poison_and_neighbours(
        stack, tmp_path, [p for p in poison_messages() if read_by_faststream(p)], seconds=30
    )


async def poison_and_neighbours(
    stack: EmbeddedStack, tmp_path: Path, poison: list[Poison], seconds: float = 120
) -> None:
    """Publish `poison`, then a valid round with the same key on every topic, to running
    workers: every poison message is dead-lettered with its reason (and nothing else is), each
    before its neighbour on the same partition, and every neighbour is processed."""
    async with running_workers(stack, tmp_path / "logs") as run:
        await poison_and_neighbours_on(run, poison, seconds)


async def poison_and_neighbours_on(run: Running, poison: list[Poison], seconds: float) -> None:
    """The body of `poison_and_neighbours` on running workers."""
    settings, env, workers, all_done = run.settings, run.env, run.workers, run.all_done
    want = expected_letters(settings, poison)
    letters: list[dict[str, Any]] = []

    async def all_letters() -> bool:
        assert not workers.dead(), logs_of(workers)
        letters[:] = [r["value"] for r in await read_topic(settings, TOPIC_DEAD_LETTER, 500)]
        got = Counter((d["topic"], d["reason"], d["key"]) for d in letters)
        return not (want - got)

    warm = await publish_round(settings, env, "warm")
    await eventually(lambda: all_done(warm), what="the first round", seconds=120)
    await publish_poison(settings, poison)
    after = await publish_round(settings, env, "neighbour", tenant=POISON_TENANT)
    try:
        await eventually(all_letters, what="every dead letter", seconds=seconds)
        await eventually(lambda: all_done(after), what="the neighbours", seconds=seconds)
        await every_subscription_past(settings, after.sent)
    except AssertionError as exc:
        got = Counter((d["topic"], d["reason"], d["key"]) for d in letters)
        raise AssertionError(f"{exc}\nmissing: {want - got}\n{logs_of(workers)}") from exc
    got = Counter((d["topic"], d["reason"], d["key"]) for d in letters)
    assert got == want, "a neighbour or a valid message was dead-lettered"
    neighbour_at = {topic: (part, offset) for topic, part, offset in after.sent}
    for d in letters:
        if d["topic"] in neighbour_at:  # same key, so same partition, and before it
            assert (d["partition"], d["offset"]) < neighbour_at[d["topic"]]
            assert d["partition"] == neighbour_at[d["topic"]][0]
    assert not workers.dead(), logs_of(workers)
