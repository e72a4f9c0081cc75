"""Paying from the portal (docs/payments.md, "Paying from the portal"): **Pay now** and
**Manage payment method**.

- Pay now with a card on file is the invoice's next attempt, taken exactly like a dunning
  retry: under the invoice's charge lease, with the (invoice, attempt) idempotency key, the
  invoice's PaymentIntents looked up at Stripe first, committed only while the lease holds.
  A click's failure leaves the dunning schedule as it was, and a click within a minute of the
  previous Pay now charge charges nothing (`processing`). The invoice's open Checkout pages
  are expired before the card is charged.
- Without a card (or when asked), a Stripe Checkout Session in payment mode, created with a
  per-click idempotency key. Before it: a succeeded PaymentIntent of the invoice settles it
  now (`paid`); a held charge lease, a completed session not reconciled yet, or an earlier
  open session that cannot be expired answer `processing` (only the newest page can take
  money); a page made while another payment started is expired at once (`processing`).
  Its PaymentIntent carries the invoice's metadata plus `source: checkout`, so the webhook
  reconciles it like any charge (`reconcile_intent`) and a declined card on the hosted page
  neither fails the invoice again nor schedules a retry.
- Manage payment method: a Checkout Session in setup mode; its `checkout.session.completed`
  makes the card the default (`checkout_events.setup_completed`).

The invoice becomes paid only when Stripe confirms the payment, never on the click.
"""

import uuid
from dataclasses import dataclass, replace
from typing import Literal

from contracts.base import utc_now
from contracts.invoices import InvoiceStatus
from services.common.errors import PermanentError
from services.payments.adapters.store import Customer, Expect
from services.payments.charging import (
    Deps,
    charge,
    close_checkouts,
    commit_result,
    describe_later,
    existing_charge,
    lease_until,
)
from services.payments.domain import (
    CHECKOUT_SOURCE,
    PAY_NOW_SOURCE,
    InvoiceRecord,
    checkout_idempotency_key,
)
from services.payments.reconcile import apply_intent

PayMethod = Literal["auto", "card_on_file", "checkout"]
Outcome = Literal["paid", "failed", "processing", "checkout"]


@dataclass(frozen=True)
class PayNowOutcome:
    """What Pay now did: `paid` (Stripe confirmed the charge of the card on file), `failed`
    (declined: `detail` is Stripe's message; the dunning schedule is unchanged), `processing`
    (a payment of the invoice is in flight, or Pay now charged its card less than a minute
    ago: nothing was charged or started) or `checkout` (open `checkout_url`, Stripe's hosted page;
    the webhook settles the invoice)."""

    invoice_number: str
    tenant_id: str
    outcome: Outcome
    checkout_url: str | None = None
    detail: str | None = None


async def _record(deps: Deps, invoice_number: str, tenant_id: str | None) -> InvoiceRecord:
    record = await deps.store.invoice_by_number(invoice_number)
    if record is None or (tenant_id is not None and record.tenant_id != tenant_id):
        raise PermanentError("unknown_invoice", f"no issued invoice {invoice_number}")
    if record.status == InvoiceStatus.paid:
        raise PermanentError("already_paid", f"{invoice_number} is already paid")
    return record


async def pay_now(deps: Deps, invoice_number: str, *, tenant_id: str | None,
                  success_url: str, cancel_url: str, method: PayMethod = "auto"
                  ) -> PayNowOutcome:
    """Pay invoice `invoice_number` (of `tenant_id` when given) now: `auto` charges the
    default card when there is one, else starts a Checkout Session; `card_on_file` and
    `checkout` choose. `success_url` / `cancel_url`: where the hosted page returns.

    Raises `PermanentError`: `unknown_invoice` (also another tenant's), `already_paid`,
    `no_payment_method` (`card_on_file` without a card); `DependencyUnavailable` while
    Stripe cannot be reached (the lease is given back)."""
    record = await _record(deps, invoice_number, tenant_id)
    customer = await deps.store.customer(record.tenant_id)
    has_card = bool(customer and customer.get("payment_method_id"))
    if method == "card_on_file" and not has_card:
        raise PermanentError("no_payment_method", f"tenant {record.tenant_id} has no card on "
                             "file")
    if method == "checkout" or not has_card:
        return await _checkout(deps, record, customer, success_url, cancel_url)
    assert customer is not None
    return await _charge_card(deps, record, customer)


async def _charge_card(deps: Deps, record: InvoiceRecord, customer: Customer) -> PayNowOutcome:
    attempt, at, until = record.attempts + 1, utc_now(), lease_until(deps)
    if record.charged_recently(at):
        return await _settled(deps, record, "processing")
    if not await deps.store.mark_attempt(record.invoice_id, record.attempts, at, until,
                                         status=record.status):
        return await _settled(deps, record, "processing")
    leased = replace(record, last_attempt_at=at, charging=attempt, charging_until=until,
                     charged_at=at)
    try:
        if not await close_checkouts(deps, record, customer.get("customer_id")):
            await deps.store.release_attempt(record.invoice_id, attempt)
            return await _settled(deps, record, "processing")
        result, used = await charge(deps, leased, customer, attempt, PAY_NOW_SOURCE)
    except BaseException:
        await deps.store.release_attempt(record.invoice_id, attempt)
        raise
    done = await commit_result(deps, leased, result, used, at, expect=Expect(charging=attempt),
                               by_tenant=True)
    await describe_later(deps, leased, result)
    if done == "succeeded":
        return PayNowOutcome(record.invoice_number, record.tenant_id, "paid")
    if done == "failed":
        return PayNowOutcome(record.invoice_number, record.tenant_id, "failed",
                             detail=result.failure_message or "the card was declined")
    return await _settled(deps, record, "failed" if not result.succeeded else "processing",
                          result.failure_message or None)


async def _settled(deps: Deps, record: InvoiceRecord, otherwise: Outcome,
                   detail: str | None = None) -> PayNowOutcome:
    """The outcome read back from the stored invoice: `paid` when it is paid by now."""
    fresh = await deps.store.invoice(record.invoice_id)
    if fresh is not None and fresh.status == InvoiceStatus.paid:
        return PayNowOutcome(record.invoice_number, record.tenant_id, "paid")
    return PayNowOutcome(record.invoice_number, record.tenant_id, otherwise, detail=detail)


async def _customer_id(deps: Deps, tenant_id: str, known: Customer | None) -> str:
    """The tenant's Stripe customer, created (and recorded, without a card) when needed."""
    had = known.get("customer_id") if known else None
    customer_id = await deps.gateway.ensure_customer(tenant_id, had)
    if customer_id != had:
        await deps.store.save_customer(tenant_id, customer_id, None, None)
    return customer_id


async def _checkout(deps: Deps, record: InvoiceRecord, customer: Customer | None,
                    success_url: str, cancel_url: str) -> PayNowOutcome:
    """A new payable page for the invoice, unless a payment of it is already under way or
    done (see the module docstring)."""
    click = uuid.uuid4().hex  # one per Pay now call: Stripe replays it on our own retries
    if record.leased(utc_now()):
        return await _settled(deps, record, "processing")
    customer_id = await _customer_id(deps, record.tenant_id, customer)
    found = await existing_charge(deps, record, {**(customer or {}), "customer_id": customer_id},
                                  record.attempts + 1)
    if found is not None and found.status == "succeeded":
        await apply_intent(deps, record, found, {})  # what its webhook will do, done now
        return await _settled(deps, record, "processing")
    for done in await deps.gateway.open_checkouts(customer_id, status="complete"):
        if done.mode == "payment" and done.metadata.get("invoice_id") == record.invoice_id \
                and not record.knows_intent(done.payment_intent_id):
            return await _settled(deps, record, "processing")  # paid, not confirmed yet
    if not await close_checkouts(deps, record, customer_id):  # one payable page at a time
        return await _settled(deps, record, "processing")
    metadata = {"tenant_id": record.tenant_id, "invoice_id": record.invoice_id,
                "invoice_number": record.invoice_number, "source": CHECKOUT_SOURCE}
    session = await deps.gateway.create_checkout(
        customer_id=customer_id, mode="payment", success_url=success_url,
        cancel_url=cancel_url, metadata=metadata, amount=record.amount,
        currency=record.currency, name=f"Invoice {record.invoice_number}",
        idempotency_key=checkout_idempotency_key(record.invoice_id, click))
    assert session.url is not None
    fresh = await deps.store.invoice(record.invoice_id)
    if fresh is None or fresh.status == InvoiceStatus.paid or fresh.leased(utc_now()):
        # another payment started meanwhile (it lists open pages before it charges): this
        # page must not take money as well
        await deps.gateway.expire_checkout(session.session_id)
        return await _settled(deps, record, "processing")
    return PayNowOutcome(record.invoice_number, record.tenant_id, "checkout", session.url)


async def setup_checkout(deps: Deps, tenant_id: str, success_url: str, cancel_url: str) -> str:
    """The URL of a Checkout Session in setup mode for the tenant's customer (created when
    needed); the card entered there becomes the default when Stripe's
    `checkout.session.completed` arrives. Raises `DependencyUnavailable` or `PermanentError`
    (`stripe_rejected`)."""
    customer_id = await _customer_id(deps, tenant_id, await deps.store.customer(tenant_id))
    session = await deps.gateway.create_checkout(
        customer_id=customer_id, mode="setup", success_url=success_url, cancel_url=cancel_url,
        metadata={"tenant_id": tenant_id, "source": CHECKOUT_SOURCE})
    assert session.url is not None
    return session.url


def card_on_file(customer: Customer | None) -> tuple[str, str, str] | None:
    """(brand, last4, description) of the tenant's default card, from its description
    (`card visa 4242`); None without one."""
    if not customer or not customer.get("payment_method_id"):
        return None
    description = str(customer.get("payment_method") or "card")
    parts = description.split()
    brand = parts[1] if len(parts) > 1 else "card"
    last4 = parts[2] if len(parts) > 2 else ""
    return brand, last4, description
