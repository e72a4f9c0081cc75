"""What the demo says while the billing clock moves, as sentences read from the platform's own
events, and the table of invoices it ends with.

    2013-08-01: issued INV-2013-0004 (acme, $118.37)
    2013-08-01: INV-2013-0004 paid by card visa 4242
    2013-08-01: INV-2013-0005 payment failed (card_declined), retry on 2013-08-04
    2013-08-15: INV-2013-0005 is overdue
    2013-08-01: emailed the invoice for INV-2013-0004 to billing@acme.example

Each date is the event's own instant on the billing clock, as a day in the tenant's time
zone. `Progress` reads the invoice, payment and notification topics from where it stopped the
previous time (one consumer without a group), and says each event once (an outbox may publish
an event again after a crash).
"""

import asyncio
import json
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from rich import box
from rich.table import Table

from contracts import TOPIC_INVOICE, TOPIC_NOTIFICATION, TOPIC_PAYMENT
from services.common.codec import event_type
from services.common.money_format import format_money
from services.common.settings import CommonSettings

TOPICS = (TOPIC_INVOICE, TOPIC_PAYMENT, TOPIC_NOTIFICATION)
_EMAILS = {"invoice_issued": "the invoice", "payment_failed": "the failed payment notice",
           "overdue": "the overdue reminder", "receipt": "the receipt"}
_STATUS = {"pending_payment": "Pending payment", "paid": "Paid", "failed": "Payment failed",
           "overdue": "Overdue"}
Record = tuple[str, dict[str, Any]]


def _day(instant: str | None, zone: str) -> str:
    if not instant:
        return "?"
    return datetime.fromisoformat(instant).astimezone(ZoneInfo(zone)).date().isoformat()


def sentence(kind: str, event: dict[str, Any], zones: dict[str, str],
             days: dict[str, str] | None = None) -> str | None:
    """The sentence for one event of type `kind` (None for events not worth a line).
    `zones` maps invoice numbers to their tenant's time zone and learns from `InvoiceIssued`;
    `days` maps them to the day of their latest event, which dates the emails (an email is
    stamped with the wall clock, not the billing clock)."""
    number = str(event.get("invoice_number", "?"))
    days = {} if days is None else days
    if kind == "InvoiceIssued":
        zones[number] = str(event.get("timezone") or "UTC")
        days[number] = str(event["issue_date"])
        money = format_money(int(event["amount"]), str(event["currency"]))
        return f"{event['issue_date']}: issued {number} ({event['tenant_id']}, {money})"
    zone = zones.get(number, "UTC")
    day = _day(event.get("occurred_at"), zone)
    if kind.startswith("Notification"):
        day = days.get(number, day)
    else:
        days[number] = day
    if kind == "PaymentSucceeded":
        return f"{day}: {number} paid by {event['payment_method']}"
    if kind == "PaymentFailed":
        reason = event.get("decline_code") or event.get("failure_code") or "declined"
        retry = event.get("next_attempt_at")
        then = f"retry on {_day(retry, zone)}" if retry else "no retry left"
        return f"{day}: {number} payment failed ({reason}), {then}"
    if kind == "InvoiceStatusChanged" and event.get("status") == "overdue":
        return f"{day}: {number} is overdue"
    if kind == "NotificationSent":
        what = _EMAILS.get(str(event.get("kind")), f"the {event.get('kind')} email")
        return f"{day}: emailed {what} for {number} to {event['recipient']}"
    if kind == "NotificationFailed":
        return (f"{day}: could not email {event['recipient']} about {number} "
                f"({event.get('reason')})")
    return None


_ORDER = {"InvoiceIssued": 0, "InvoiceStatusChanged": 1, "PaymentSucceeded": 2,
          "PaymentFailed": 2}


def sentences(records: Iterable[Record], zones: dict[str, str], seen: set[str],
              days: dict[str, str] | None = None) -> list[str]:
    """The sentences of `records` ((event type, event) pairs) not `seen` before (by event
    id): issued invoices, status changes, payments, then emails, ordered by date. A record
    that is not a well-formed event (a poison message) is skipped."""
    ordered = sorted(records, key=lambda r: _ORDER.get(r[0], 3))
    days = {} if days is None else days
    lines = []
    for kind, event in ordered:
        event_id = str(event.get("event_id", ""))
        if event_id in seen:
            continue
        seen.add(event_id)
        try:
            line = sentence(kind, event, zones, days)
        except (KeyError, ValueError, TypeError, ArithmeticError):
            continue  # not a well-formed event (a poison message): the dead letters say it
        if line is not None:
            lines.append(line)
    return sorted(lines, key=lambda line: line.split(":", 1)[0])


class Progress:
    """The demo's running commentary: `new_lines()` gives the sentences of the events
    published since its previous call."""

    def __init__(self, settings: CommonSettings, idle_ms: int = 300) -> None:
        self.settings = settings
        self.idle_ms = idle_ms
        self.positions: dict[TopicPartition, int] = {}
        self.zones: dict[str, str] = {}
        self.days: dict[str, str] = {}
        self.seen: set[str] = set()

    async def new_lines(self) -> list[str]:
        """Read what is new on the topics (until `idle_ms` pass without a record)."""
        return sentences(await self._read(), self.zones, self.seen, self.days)

    async def tell(self, say: Callable[[str], None], timeout: float = 30.0) -> None:  # noqa: ASYNC109
        """`say` each of `new_lines()`. The commentary never stops the demo: when the broker
        cannot be read (a fault the chaos plan injected, a slow start) it says so, and the
        next call catches up from the same positions."""
        try:
            lines = await asyncio.wait_for(self.new_lines(), timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            say(f"(the events could not be read for the progress lines: {type(exc).__name__})")
            return
        except Exception as exc:  # noqa: BLE001 - commentary only: the run goes on
            say(f"(no progress lines this time: {type(exc).__name__}: {exc})")
            return
        for line in lines:
            say(line)

    async def _read(self) -> list[Record]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers,
                                    group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            tps = [TopicPartition(self.settings.topic(t), p) for t in TOPICS
                   for p in sorted(consumer.partitions_for_topic(self.settings.topic(t)) or ())]
            if not tps:
                return []
            consumer.assign(tps)
            for tp in tps:
                if tp in self.positions:
                    consumer.seek(tp, self.positions[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            found: list[Record] = []
            positions = dict(self.positions)  # kept only if the whole read succeeds
            while batch := await consumer.getmany(timeout_ms=self.idle_ms, max_records=5000):
                for tp, messages in batch.items():
                    for m in messages:
                        positions[tp] = m.offset + 1
                        found += _record(event_type(list(m.headers or ())), m.value)
            self.positions = positions
            return found
        finally:
            await consumer.stop()


def _record(kind: str | None, raw: bytes | None) -> list[Record]:
    try:
        value = json.loads(raw or b"")
    except ValueError:
        return []
    return [(kind, value)] if kind and isinstance(value, dict) else []


def invoice_table(invoices: list[dict[str, Any]]) -> Table:
    """The invoices the run produced (rows of `invoices.json`): number, tenant, period (first
    to last day in the tenant's zone, ISO dates), amount and status."""
    table = Table(title=f"{len(invoices)} invoice(s)", box=box.SIMPLE_HEAD)
    for name in ("Invoice", "Tenant", "Period", "Amount", "Status"):
        table.add_column(name, no_wrap=name in ("Invoice", "Period", "Amount"),
                         justify="right" if name == "Amount" else "left")
    table.columns[1].min_width = min(24, max((len(r["tenant_id"]) for r in invoices), default=6))
    for row in invoices:
        # both bounds carry the tenant's offset at that instant: local days as they are
        first = datetime.fromisoformat(row["period_start"]).date()
        last = (datetime.fromisoformat(row["period_end"]) - timedelta(microseconds=1)).date()
        table.add_row(row["invoice_number"], row["tenant_id"],
                      f"{first.isoformat()} to {last.isoformat()}",
                      format_money(int(row["amount"]), row["currency"]),
                      _STATUS.get(row["status"], row["status"]))
    return table
