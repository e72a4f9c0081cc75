"""Helpers for the payments integration tests: Stripe events as the ingress would publish
them, and charges made directly through the gateway (a worker that died before committing)."""

from datetime import UTC, datetime
from typing import Any

from contracts import InvoiceIssued, StripeEventReceived
from services.payments import domain
from services.payments.domain import ChargeResult
from services.payments.handlers import Deps
from tests.support.stripe_fake import StripeFake


def received(evt: dict[str, Any], **changes: Any) -> StripeEventReceived:
    """A Stripe `event` object (as `GET /v1/events` returns it) as the ingress publishes it."""
    body = {**evt, **changes}
    return StripeEventReceived(event_id=str(body["id"]), stripe_event_type=str(body["type"]),
                               occurred_at=datetime.fromtimestamp(int(body["created"]), UTC),
                               payload=body)


async def reconcile_all(fake: StripeFake, deps: Deps, event_type: str) -> list[str]:
    """Hand every event of `event_type` the fake holds to the handler; the decisions."""
    from services.payments import handlers

    return [await handlers.handle_stripe_event(received(e), deps)
            for e in fake.events(event_type)]


async def charge_directly(deps: Deps, invoice: InvoiceIssued, attempt: int = 1,
                          amount: int | None = None, invoice_id: str | None = None
                          ) -> ChargeResult:
    """Charge the tenant's default method for `invoice` the way the worker does, without
    recording anything (as if the worker died right after Stripe answered)."""
    customer = await deps.store.customer(invoice.tenant_id)
    assert customer is not None
    return await deps.gateway.charge(
        customer_id=customer["customer_id"], payment_method_id=customer["payment_method_id"],
        amount=invoice.amount if amount is None else amount, currency=invoice.currency,
        idempotency_key=domain.idempotency_key(invoice.invoice_id, attempt),
        metadata={"tenant_id": invoice.tenant_id,
                  "invoice_id": invoice_id or invoice.invoice_id,
                  "invoice_number": invoice.invoice_number, "attempt": str(attempt)},
    )
