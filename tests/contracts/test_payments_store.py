"""One suite for `PaymentsStore`, run against every implementation: the in-memory store and
the MongoDB store (this test's database). What the handlers rely on: records read back as
written, `commit` all or nothing (tracking, `Expect` conditions, outbox ids, parked events),
the charge lease (docs/payments.md "Charge lease") and the dunning queries."""

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.base import utc_now
from contracts.invoices import InvoiceStatus
from services.common.settings import CommonSettings
from services.payments import domain
from services.payments.adapters.memory_store import InMemoryPaymentsStore
from services.payments.adapters.mongo_store import MongoPaymentsStore
from services.payments.adapters.store import (
    AuditEntry,
    CustomerChange,
    Expect,
    ParkedEvent,
    PaymentsStore,
    SubscriptionCheckout,
)
from services.payments.domain import ChargeResult, InvoiceRecord
from tests.support.mongo import service_database

T0 = datetime(2013, 8, 1, tzinfo=UTC)
CARD = ChargeResult(True, "pi_1", "card visa 4242", payment_method_id="pm_1")
DECLINED = ChargeResult(False, "pi_2", failure_code="card_declined")


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.unit),
                        pytest.param("mongo", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PaymentsStore]:
    """Each test runs once per implementation, on an empty store."""
    if request.param == "memory":
        yield InMemoryPaymentsStore()
        return
    settings: CommonSettings = request.getfixturevalue("common_settings")  # own database
    async with service_database(settings) as (client, db):
        mongo = MongoPaymentsStore(client, db)
        await mongo.ensure_indexes()
        yield mongo


def issued(n: int = 1, **changes: Any) -> InvoiceRecord:
    record = InvoiceRecord(f"inv-{n}", f"INV-2013-{n:04d}", "acme", 4900, "USD", T0,
                           timezone="Europe/Amsterdam")
    return replace(record, **changes)


def failed(n: int = 1, retry_in_days: int = 3) -> InvoiceRecord:
    record, _ = domain.fail(issued(n), DECLINED, 1, T0 + timedelta(hours=n), (retry_in_days,))
    return record


async def test_a_committed_record_reads_back_by_id_number_and_intent(
    store: PaymentsStore,
) -> None:
    paid, event = domain.settle(issued(), CARD, 1, T0)
    assert await store.commit(record=paid, outgoing=[(event, "billing.payment.v1", "acme")])
    assert await store.invoice("inv-1") == paid
    assert await store.invoice_by_number("INV-2013-0001") == paid
    assert await store.invoice_by_intent("pi_1") == paid
    stored = await store.invoice("inv-1")
    assert stored is not None and stored.status is InvoiceStatus.paid
    assert await store.invoice("inv-9") is None and await store.invoice_by_intent("pi_9") is None
    assert await store.outbox_events() == [event]


async def test_an_event_is_committed_once_and_a_repeat_writes_nothing(
    store: PaymentsStore,
) -> None:
    assert not await store.processed("payments.invoices", "e1")
    assert await store.commit(consumer="payments.invoices", event_id="e1", record=issued())
    assert await store.processed("payments.invoices", "e1")
    assert not await store.processed("payments.stripe-events", "e1")
    assert not await store.commit(consumer="payments.invoices", event_id="e1",
                                  record=issued(attempts=5))
    assert await store.invoice("inv-1") == issued()


async def test_an_outgoing_event_already_in_the_outbox_refuses_the_whole_commit(
    store: PaymentsStore,
) -> None:
    paid, event = domain.settle(issued(), CARD, 1, T0)
    out = [(event, "billing.payment.v1", "acme")]
    assert await store.commit(record=paid, outgoing=out)
    assert not await store.commit(consumer="c", event_id="e2", record=issued(2), outgoing=out)
    assert not await store.processed("c", "e2")
    assert await store.invoice("inv-2") is None
    assert await store.outbox_events() == [event]


async def test_a_record_is_replaced_only_while_it_meets_the_expectation(
    store: PaymentsStore,
) -> None:
    assert not await store.commit(record=issued(), expect=Expect(attempts=0))  # none stored
    assert await store.invoice("inv-1") is None
    await store.commit(record=failed())
    retried = replace(failed(), attempts=2)
    assert not await store.commit(record=retried, expect=Expect(status=InvoiceStatus.paid))
    assert not await store.commit(record=retried, expect=Expect(attempts=2))
    assert await store.invoice("inv-1") == failed()
    assert await store.commit(record=retried,
                              expect=Expect(status=InvoiceStatus.failed, attempts=1))
    assert await store.invoice("inv-1") == retried


async def test_the_charge_lease_is_taken_once_and_excludes_a_manual_payment(
    store: PaymentsStore,
) -> None:
    await store.commit(record=failed())
    at = T0 + timedelta(days=3)
    until = utc_now() + timedelta(minutes=10)
    assert not await store.mark_attempt("inv-1", 0, at, until)  # wrong attempt count
    assert await store.mark_attempt("inv-1", 1, at, until)
    assert not await store.mark_attempt("inv-1", 1, at, until)  # the lease holds
    leased = await store.invoice("inv-1")
    assert leased is not None and (leased.charging, leased.last_attempt_at) == (2, at)
    manual, _ = domain.settle(leased, None, 1, at, reference="ACH-1", method="ach")
    assert not await store.commit(record=manual, expect=Expect(idle_at=utc_now()))
    assert await store.commit(record=manual, expect=Expect(idle_at=until + timedelta(1)))


async def test_a_lease_given_back_or_run_out_lets_the_next_attempt_take_it(
    store: PaymentsStore,
) -> None:
    await store.commit(record=failed())
    assert await store.mark_attempt("inv-1", 1, T0, utc_now() + timedelta(minutes=10))
    await store.release_attempt("inv-1", 3)  # not the holder: nothing changes
    assert not await store.mark_attempt("inv-1", 1, T0, utc_now() - timedelta(seconds=1))
    await store.release_attempt("inv-1", 2)
    released = await store.invoice("inv-1")
    assert released is not None and (released.charging, released.charging_until) == (None, None)
    assert await store.mark_attempt("inv-1", 1, T0, utc_now() - timedelta(seconds=1))
    assert await store.mark_attempt("inv-1", 1, T0, None)  # the first lease ran out
    held = await store.invoice("inv-1")
    assert held is not None and held.charging == 2
    assert await store.commit(record=replace(held, charging=None), expect=Expect(charging=2))


async def test_a_pending_invoice_is_leased_only_when_its_status_is_named(
    store: PaymentsStore,
) -> None:
    await store.commit(record=issued())
    until = utc_now() + timedelta(minutes=10)
    assert not await store.mark_attempt("inv-1", 0, T0, until)  # a retry: failed only
    assert await store.mark_attempt("inv-1", 0, T0, until, status=InvoiceStatus.pending_payment)
    assert not await store.mark_attempt("inv-1", 0, T0, until,
                                        status=InvoiceStatus.pending_payment)  # held
    leased = await store.invoice("inv-1")
    assert leased is not None and (leased.status, leased.charging) == (
        InvoiceStatus.pending_payment, 1)


async def test_duplicate_and_refund_expectations_guard_against_lost_updates(
    store: PaymentsStore,
) -> None:
    paid, _ = domain.settle(issued(), CARD, 1, T0)
    await store.commit(record=paid)
    twice, _ = domain.duplicate(paid, replace(CARD, payment_intent_id="pi_3"), T0)
    assert await store.commit(record=twice, expect=Expect(status=InvoiceStatus.paid,
                                                          without_duplicate="pi_3"))
    assert not await store.commit(record=twice, expect=Expect(without_duplicate="pi_3"))
    assert await store.invoice_by_intent("pi_3") == twice
    refund = domain.Refund("re_1", 900, "USD", "pi_1", "succeeded", T0)
    refunded, _ = domain.refund(twice, refund)
    assert await store.commit(record=refunded, expect=Expect(refunds=()))
    assert not await store.commit(record=refunded, expect=Expect(refunds=()))
    assert await store.commit(record=refunded, expect=Expect(refunds=refunded.refunds))
    assert await store.invoice("inv-1") == refunded


async def test_due_retries_come_earliest_first_and_the_next_one_is_found(
    store: PaymentsStore,
) -> None:
    for n, days in ((1, 5), (2, 3), (3, 7)):
        await store.commit(record=failed(n, days))
    paid, _ = domain.settle(issued(4), CARD, 1, T0)
    await store.commit(record=paid)
    due = await store.due_retries(T0 + timedelta(days=6))
    assert [r.invoice_id for r in due] == ["inv-2", "inv-1"]
    assert [r.invoice_id for r in await store.due_retries(T0 + timedelta(days=8), limit=1)] == [
        "inv-2"]
    assert await store.next_retry_after(T0) == failed(2, 3).next_attempt_at
    assert await store.next_retry_after(T0 + timedelta(days=6)) == failed(3, 7).next_attempt_at
    assert await store.next_retry_after(T0 + timedelta(days=30)) is None


async def test_parked_events_are_kept_once_listed_oldest_first_and_dropped(
    store: PaymentsStore,
) -> None:
    late = ParkedEvent("evt_2", "inv-1", "pi_2", T0 + timedelta(seconds=2))
    early = ParkedEvent("evt_1", "inv-1", "pi_1", T0)
    assert await store.commit(consumer="s", event_id="evt_2", park=late)
    assert await store.commit(consumer="s", event_id="evt_1", park=early)
    assert not await store.commit(park=early)
    assert await store.parked("inv-1") == [early, late]
    assert await store.parked("inv-2") == []
    await store.drop_parked(["evt_1", "evt_2"])
    assert await store.parked("inv-1") == []


async def test_an_audit_entry_is_recorded_with_the_tracking_record(store: PaymentsStore) -> None:
    entry = AuditEntry("evt_1", "pi_1", "inv-1", "amount", T0, "intent 100 USD")
    assert await store.commit(consumer="s", event_id="evt_1", audit=entry)
    assert not await store.commit(consumer="s", event_id="evt_1", audit=entry)
    assert await store.audit_entries("inv-1") == [entry]


async def test_a_customer_is_saved_replaced_and_an_invoice_description_improved(
    store: PaymentsStore,
) -> None:
    assert await store.customer("acme") is None
    await store.save_customer("acme", "cus_1", None, None)
    await store.save_customer("acme", "cus_1", "pm_1", "card visa 4242")
    found = await store.customer("acme")
    assert found is not None
    assert (found["customer_id"], found["payment_method_id"], found["payment_method"]) == (
        "cus_1", "pm_1", "card visa 4242")
    paid, _ = domain.settle(issued(), replace(CARD, payment_method="card"), 1, T0)
    await store.commit(record=paid)
    await store.set_payment_method("inv-1", "card visa 4242")
    described = await store.invoice("inv-1")
    assert described is not None and described.payment_method == "card visa 4242"


async def test_billing_details_and_the_card_are_kept_beside_each_other(
    store: PaymentsStore,
) -> None:
    await store.save_customer("acme", "cus_1", "pm_1", "card visa 4242")
    await store.save_billing("acme", "cus_1", {"name": "Acme", "email": "a@acme.example"})
    await store.save_customer("acme", "cus_1", "pm_2", "card mastercard 4444")
    found = await store.customer("acme")
    assert found is not None
    assert (found["billing"], found["payment_method_id"]) == (
        {"name": "Acme", "email": "a@acme.example"}, "pm_2")


async def test_a_subscription_checkout_is_open_until_a_commit_closes_it_with_its_event(
    store: PaymentsStore,
) -> None:
    now = utc_now().replace(microsecond=0)  # MongoDB keeps milliseconds
    older = SubscriptionCheckout("cs_1", "acme", "basic", None, now - timedelta(hours=2),
                                 now + timedelta(hours=22))
    newer = SubscriptionCheckout("cs_2", "acme", "pro", 3, now - timedelta(hours=1),
                                 now + timedelta(hours=23))
    for checkout in (older, newer):
        await store.add_subscription_checkout(checkout)
    assert await store.subscription_checkout("cs_2") == newer
    assert await store.open_subscription_checkout("acme", now) == newer
    assert await store.open_subscription_checkout("acme", now + timedelta(days=1)) is None
    assert await store.open_subscription_checkout("globex", now) is None
    paid, event = domain.settle(issued(), CARD, 1, T0)
    card = CustomerChange("acme", {"payment_method_id": "pm_9", "customer_id": "cus_1"})
    assert await store.commit(consumer="s", event_id="evt_1", customer=card,
                              checkout_status=("cs_2", "complete"),
                              outgoing=[(event, "billing.payment.v1", "acme")])
    assert await store.open_subscription_checkout("acme", now) == older
    found = await store.customer("acme")
    assert found is not None and found["payment_method_id"] == "pm_9"
    refused = CustomerChange("acme", {"payment_method_id": "pm_10"})
    assert not await store.commit(consumer="s", event_id="evt_2", customer=refused,
                                  checkout_status=("cs_1", "expired"),
                                  outgoing=[(event, "billing.payment.v1", "acme")])
    assert await store.open_subscription_checkout("acme", now) == older
    again = await store.customer("acme")
    assert again is not None and again["payment_method_id"] == "pm_9"
