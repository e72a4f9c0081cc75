"""Work for every worker kind, and positive evidence that it was done, for the fault tests.

One `Round` (tagged) is: a usage event (usage-collector), a signed configuration for a new
tenant (invoicer; its `BillingConfigApplied` goes through the invoicer's outbox to the
notifier's projection), a Stripe webhook POSTed to the ingress (stripe-webhooks, then
payments), an `InvoiceStatusChanged` to `paid` (notifier: one `notifier_sent` record; payments
skips it) and a `PaymentDuplicated` (the invoicer skips it). `done` reads MongoDB for the effect
of each; `consumed` checks every consumer group's committed offsets past the round's records.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer, TopicPartition
from pymongo import AsyncMongoClient

from contracts import (
    TOPIC_INVOICE,
    TOPIC_PAYMENT,
    TOPIC_TENANT_CONFIG,
    TOPIC_USAGE,
    InvoiceStatusChanged,
    PaymentDuplicated,
)
from contracts.base import Contract
from services.common.codec import encode, headers_for
from services.common.kafka import ensure_topics
from services.common.lag import committed_offsets
from services.common.settings import CommonSettings
from services.common.signing import sign
from services.demo.processes import WorkerSet
from services.devstack.api import EmbeddedStack
from services.devstack.stripe_fake import sign as stripe_signature
from services.invoicer.api import CONSUMES as INVOICER
from services.notifier.api import CONSUMES as NOTIFIER
from services.payments.api import CONSUMES as PAYMENTS
from services.usage_collector.adapters.seen_ids import count_seen_ids
from services.usage_collector.api import CONSUMES as COLLECTOR
from tests.integration.test_invoicer_support import config
from tests.support.fault_stack import logs_of, start_workers, worker_env
from tests.support.polling import eventually

#: (contract topic, consumer group) of every subscription of every worker.
SUBSCRIPTIONS = (*COLLECTOR, *INVOICER, *PAYMENTS, *NOTIFIER)
T0 = datetime(2013, 8, 1, tzinfo=UTC)
Sent = tuple[str, int, int]  # real topic, partition, offset


def settings_for(env: dict[str, str]) -> CommonSettings:
    """`CommonSettings` for a worker environment (not read from `os.environ`)."""
    return CommonSettings(
        kafka_bootstrap_servers=env["BILLING_KAFKA_BOOTSTRAP_SERVERS"],
        mongo_uri=env["BILLING_MONGO_URI"], mongo_db=env["BILLING_MONGO_DB"],
        topic_prefix=env["BILLING_TOPIC_PREFIX"],
    )


def usage_event(tag: str, tenant: str) -> bytes:
    """A valid usage event of 0.25 cpu_hours with id `tag`."""
    return json.dumps({
        "specversion": "1.0", "id": tag, "source": "faults", "type": "billing.usage",
        "subject": tenant, "time": T0.isoformat(),
        "data": {"meter": "cpu_hours", "quantity": "0.25", "service": "web"},
    }).encode()  # fmt: skip


def status_changed(tag: str, tenant: str) -> InvoiceStatusChanged:
    """An invoice `inv-<tag>` paid, with notifications off (the notifier records a skip)."""
    return InvoiceStatusChanged(
        invoice_id=f"inv-{tag}", invoice_number="INV-2013-0001", tenant_id=tenant,
        previous_status="pending_payment", status="paid", amount=1000, currency="USD",  # type: ignore[arg-type]
        issue_date=date(2013, 8, 1), due_date=date(2013, 8, 15), period_start=T0,
        period_end=T0, billing_email="billing@faults.example", email_notifications=False,
    )  # fmt: skip


def duplicated(tag: str, tenant: str) -> PaymentDuplicated:
    """A payment received twice: the invoicer reads the payment topic but skips this type."""
    return PaymentDuplicated(
        invoice_id=f"inv-{tag}", invoice_number="INV-2013-0001", tenant_id=tenant,
        amount=1000, currency="USD", payment_reference=f"pi_{tag}", received_at=T0,
    )


@dataclass
class Round:
    """What one round published, and where."""

    tag: str
    tenant: str
    config_event: str = ""
    stripe_event: str = ""
    sent: list[Sent] = field(default_factory=list)


async def publish(settings: CommonSettings, records: list[tuple[str, bytes, bytes, Any]]) -> list[
    Sent
]:
    """Publish (contract topic, key, value, headers) in order; where each landed."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=10_000
    )
    await producer.start()
    try:
        out = []
        for topic, key, value, headers in records:
            meta = await producer.send_and_wait(settings.topic(topic), value, key=key,
                                                headers=headers)
            out.append((meta.topic, meta.partition, meta.offset))
        return out
    finally:
        await producer.stop()


def contract(topic: str, key: str, event: Contract) -> tuple[str, bytes, bytes, Any]:
    """A record carrying `event` as the platform's producers write it."""
    value, headers = encode(event)
    return topic, key.encode(), value, headers


async def publish_round(settings: CommonSettings, env: dict[str, str], tag: str,
                        tenant: str | None = None) -> Round:
    """Publish one round keyed by `tenant` (default `t-<tag>`) and POST its webhook."""
    tenant = tenant or f"t-{tag}"
    command = sign(config(tenant), env["BILLING_COMMAND_SIGNING_KEY"].encode())
    r = Round(tag, tenant, config_event=command.event_id, stripe_event=f"evt_{tag}")
    r.sent = await publish(settings, [
        (TOPIC_USAGE, tenant.encode(), usage_event(tag, tenant), headers_for("UsageRecorded")),
        contract(TOPIC_TENANT_CONFIG, tenant, command),
        contract(TOPIC_INVOICE, tenant, status_changed(tag, tenant)),
        contract(TOPIC_PAYMENT, tenant, duplicated(tag, tenant)),
    ])  # fmt: skip
    await post_webhook(env, r.stripe_event, tenant)
    return r


async def post_webhook(env: dict[str, str], event_id: str, tenant: str) -> None:
    """POST a signed `customer.created` event to the ingress until it answers 200 (as Stripe
    retries); `AssertionError` after 90 s."""
    body = json.dumps({
        "id": event_id, "object": "event", "type": "customer.created", "api_version": None,
        "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
        "data": {"object": {"id": f"cus_{event_id}", "object": "customer",
                            "metadata": {"tenant_id": tenant}}},
    }).encode()  # fmt: skip
    url = (f"http://127.0.0.1:{env['BILLING_STRIPE_WEBHOOKS_PORT']}"
           f"{env.get('BILLING_STRIPE_WEBHOOKS_PATH', '/stripe/webhook')}")
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            header = stripe_signature(body, env["BILLING_STRIPE_WEBHOOK_SECRET"])
            try:
                answer = await http.post(url, content=body,
                                         headers={"Stripe-Signature": header})
                if answer.status_code == 200:
                    return
                last: object = answer.status_code
            except httpx.HTTPError as exc:
                last = exc
            if time.monotonic() > deadline:
                raise AssertionError(f"webhook {event_id} not taken: {last!r}")
            await asyncio.sleep(0.2)  # paces the retries, as Stripe's back-off would


async def done(db: Any, r: Round) -> dict[str, bool]:
    """Which effects of round `r` are in MongoDB (all True: the round was processed)."""
    processed = db["processed_events"]
    return {
        "usage-collector": await count_seen_ids(db, "faults", f"faults/{r.tag}") == 1,
        "invoicer": await processed.count_documents(
            {"_id": f"invoicer.config:{r.config_event}"}) == 1,
        "invoicer outbox -> notifier": await db["notifier_contacts"].count_documents(
            {"_id": r.tenant}) == 1,
        "stripe-webhooks -> payments": await processed.count_documents(
            {"_id": f"payments.stripe-events:{r.stripe_event}"}) == 1,
        "notifier": await db["notifier_sent"].count_documents({"invoice_id": f"inv-{r.tag}"}) == 1,
    }  # fmt: skip


async def consumed(settings: CommonSettings, sent: list[Sent]) -> list[str]:
    """The (group, topic, partition) whose committed offset is not yet past a record in
    `sent` (empty: every subscription consumed everything sent)."""
    behind = []
    for topic, group in SUBSCRIPTIONS:
        real = settings.topic(topic)
        mine = [(p, o) for t, p, o in sent if t == real]
        if not mine:
            continue
        committed = await committed_offsets(settings, settings.group(group), [real])
        behind += [f"{group} {real}[{p}]@{o}" for p, o in mine
                   if committed.get(TopicPartition(real, p), 0) <= o]
    return behind


async def every_subscription_past(settings: CommonSettings, sent: list[Sent]) -> None:
    """Wait until every consumer group committed past every record in `sent`; the failure
    names the groups and partitions still behind."""
    behind: list[str] = []

    async def caught_up() -> bool:
        behind[:] = await consumed(settings, sent)
        return not behind

    try:
        await eventually(caught_up, what="every subscription past the records", seconds=60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: behind: {behind}") from exc


@dataclass
class Running:
    """Every worker kind running against a fault test's stack: its environment, settings,
    processes and database."""

    env: dict[str, str]
    settings: CommonSettings
    workers: WorkerSet
    db: Any

    async def all_done(self, r: Round) -> bool:
        """Round `r` processed by every worker (and no worker has exited)."""
        assert not self.workers.dead(), logs_of(self.workers)
        return all((await done(self.db, r)).values())


@asynccontextmanager
async def running_workers(stack: EmbeddedStack, log_dir: Path) -> AsyncIterator[Running]:
    """Create the topics and start every worker on `stack` with a database and topic prefix of
    their own; on exit stop them, drop the database, and (when the body succeeded) assert
    every worker exited 0."""
    env = worker_env(stack)
    settings = settings_for(env)
    await ensure_topics(settings)
    workers = start_workers(env, log_dir)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongo_uri)
    try:
        yield Running(env, settings, workers, client[settings.mongo_db])
    finally:
        codes = workers.stop_all()
        await client.drop_database(settings.mongo_db)
        await client.close()
    assert set(codes.values()) == {0}, logs_of(workers)
