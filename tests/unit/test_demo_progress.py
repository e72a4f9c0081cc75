"""What the demo says while the clock moves: sentences (not dict reprs) read from the
platform's events, each event once, dated in the tenant's zone; and the closing table of
invoices."""

import io
from typing import Any

import pytest
from rich.console import Console

from services.demo.progress import invoice_table, sentence, sentences
from services.demo.steps import counted

pytestmark = pytest.mark.unit

ISSUED: dict[str, Any] = {
    "event_id": "e1", "invoice_number": "INV-2013-0004", "tenant_id": "acme", "amount": 11837,
    "currency": "USD", "issue_date": "2013-08-01", "timezone": "UTC",
    "occurred_at": "2013-08-01T00:00:00Z"}


def test_each_event_reads_as_a_sentence() -> None:
    zones: dict[str, str] = {}
    assert sentence("InvoiceIssued", ISSUED, zones) == (
        "2013-08-01: issued INV-2013-0004 (acme, $118.37)")
    paid = {"invoice_number": "INV-2013-0004", "payment_method": "card visa 4242",
            "occurred_at": "2013-08-01T00:00:05Z"}
    assert sentence("PaymentSucceeded", paid, zones) == (
        "2013-08-01: INV-2013-0004 paid by card visa 4242")
    failed = {"invoice_number": "INV-2013-0004", "failure_code": "card_declined",
              "decline_code": None, "occurred_at": "2013-08-01T00:00:05Z",
              "next_attempt_at": "2013-08-04T00:00:00Z"}
    assert sentence("PaymentFailed", failed, zones) == (
        "2013-08-01: INV-2013-0004 payment failed (card_declined), retry on 2013-08-04")
    last = {**failed, "decline_code": "insufficient_funds", "next_attempt_at": None}
    assert sentence("PaymentFailed", last, zones) == (
        "2013-08-01: INV-2013-0004 payment failed (insufficient_funds), no retry left")
    overdue = {"invoice_number": "INV-2013-0004", "status": "overdue",
               "occurred_at": "2013-08-16T00:00:00Z"}
    assert sentence("InvoiceStatusChanged", overdue, zones) == (
        "2013-08-16: INV-2013-0004 is overdue")
    assert sentence("InvoiceStatusChanged", {**overdue, "status": "paid"}, zones) is None
    mail = {"invoice_number": "INV-2013-0004", "kind": "invoice_issued",
            "recipient": "billing@acme.example", "occurred_at": "2013-08-01T00:00:01Z"}
    assert sentence("NotificationSent", mail, zones) == (
        "2013-08-01: emailed the invoice for INV-2013-0004 to billing@acme.example")
    bounced = {**mail, "reason": "550 no such user"}
    assert sentence("NotificationFailed", bounced, zones) == (
        "2013-08-01: could not email billing@acme.example about INV-2013-0004 "
        "(550 no such user)")
    assert sentence("StripeEventReceived", {}, zones) is None


def test_dates_are_days_in_the_tenants_zone_and_each_event_is_said_once() -> None:
    nairobi = {**ISSUED, "event_id": "e2", "invoice_number": "INV-2013-0008",
               "tenant_id": "initech", "currency": "KES", "issue_date": "2013-09-15",
               "timezone": "Africa/Nairobi"}
    paid = {"event_id": "p2", "invoice_number": "INV-2013-0008",
            "payment_method": "card visa 4242", "occurred_at": "2013-09-14T21:00:05Z"}
    seen: set[str] = set()
    zones: dict[str, str] = {}
    # the payment read before its invoice (another partition): the zone is still known
    lines = sentences([("PaymentSucceeded", paid), ("InvoiceIssued", nairobi)], zones, seen)
    assert lines == ["2013-09-15: issued INV-2013-0008 (initech, KES 118.37)",
                     "2013-09-15: INV-2013-0008 paid by card visa 4242"]
    again = sentences([("InvoiceIssued", nairobi), ("PaymentSucceeded", paid)], zones, seen)
    assert again == []  # an outbox republished them: nothing new
    assert not any("{" in line for line in lines)


def test_an_email_is_dated_by_its_invoices_latest_event_not_the_wall_clock() -> None:
    paid = {"event_id": "p1", "invoice_number": "INV-2013-0004",
            "payment_method": "card visa 4242", "occurred_at": "2013-08-02T10:00:00Z"}
    receipt = {"event_id": "n1", "invoice_number": "INV-2013-0004", "kind": "receipt",
               "recipient": "billing@acme.example", "occurred_at": "2026-11-22T12:00:00Z"}
    lines = sentences([("NotificationSent", receipt), ("PaymentSucceeded", paid),
                       ("InvoiceIssued", ISSUED)], {}, set())
    assert lines == ["2013-08-01: issued INV-2013-0004 (acme, $118.37)",
                     "2013-08-02: INV-2013-0004 paid by card visa 4242",
                     "2013-08-02: emailed the receipt for INV-2013-0004 to billing@acme.example"]


def test_the_clock_line_counts_in_words() -> None:
    assert counted(2, "invoice", "issued") == "2 invoices issued"
    assert counted(1, "payment", "retried") == "1 payment retried"
    assert counted(0, "invoice", "issued") == ""


def test_the_run_ends_with_a_table_of_its_invoices() -> None:
    rows = [{"invoice_number": "INV-2013-0008", "tenant_id": "initech", "currency": "KES",
             "amount": 1496109, "status": "overdue",
             "period_start": "2013-06-15T00:00:00+03:00",
             "period_end": "2013-09-15T00:00:00+03:00"},
            {"invoice_number": "INV-2013-0009", "tenant_id": "umbrella", "currency": "EUR",
             "amount": 11268, "status": "paid",
             "period_start": "2013-03-01T00:00:00+01:00",
             "period_end": "2013-04-01T00:00:00+02:00"}]
    out = io.StringIO()
    Console(file=out, width=120).print(invoice_table(rows))
    text = out.getvalue()
    for expected in ("INV-2013-0008", "initech", "2013-06-15 to 2013-09-14",
                     "KES 14,961.09", "Overdue", "2013-03-01 to 2013-03-31", "€112.68",
                     "Paid", "2 invoice(s)"):
        assert expected in text, text


async def test_an_unreadable_broker_never_stops_the_demo() -> None:
    from aiokafka.errors import KafkaConnectionError

    from services.common.settings import CommonSettings
    from services.demo.progress import Progress

    class Unreachable(Progress):
        async def new_lines(self) -> list[str]:
            raise KafkaConnectionError("no broker")

    said: list[str] = []
    await Unreachable(CommonSettings()).tell(said.append)
    assert said == ["(the events could not be read for the progress lines: "
                    "KafkaConnectionError)"]


def test_poison_messages_on_the_topics_are_skipped() -> None:
    poison: list[tuple[str, dict[str, Any]]] = [
        ("InvoiceIssued", {"event_id": "x1", "invoice_number": "INV-2013-0099"}),
        ("PaymentFailed", {"event_id": "x2", "occurred_at": "not a date"}),
        ("InvoiceIssued", {**ISSUED, "amount": "lots"}),
        ("InvoiceIssued", ISSUED | {"event_id": "e9"}),
    ]
    assert sentences(poison, {}, set()) == ["2013-08-01: issued INV-2013-0004 (acme, $118.37)"]


async def test_any_other_failure_of_the_commentary_costs_one_line() -> None:
    from services.common.settings import CommonSettings
    from services.demo.progress import Progress

    class Broken(Progress):
        async def new_lines(self) -> list[str]:
            raise RuntimeError("unexpected")

    said: list[str] = []
    await Broken(CommonSettings()).tell(said.append)
    assert said == ["(no progress lines this time: RuntimeError: unexpected)"]
