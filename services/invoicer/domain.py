"""Invoicer rules that need no I/O: who may configure billing, what a valid configuration is,
how invoice statuses move, and the deterministic ids of invoices and their events.

Sources: docs/design.md#statuses (statuses and numbers), docs/configuration.md (roles, coupons
and credits) and docs/invoicing.md.
"""

from datetime import date
from typing import Final, Literal

from contracts import BillingConfigSubmitted
from contracts.invoices import InvoiceStatus
from services.common.errors import Forbidden, InvalidMessage, PermanentError

SUPER_ROLE = "super"
#: Unpaid as the API and the portal mean it: issued and not (yet) paid, overdue included.
UNPAID: Final = (InvoiceStatus.pending_payment, InvoiceStatus.failed, InvoiceStatus.overdue)
#: Awaiting payment before the due date has passed: the statuses the billing clock moves to
#: `overdue` once the due date ends (docs/billing-periods.md).
AWAITING_PAYMENT: Final = (InvoiceStatus.pending_payment, InvoiceStatus.failed)
PaymentOutcome = Literal["succeeded", "failed"]


def authorize(command: BillingConfigSubmitted) -> None:
    """Raise `Forbidden` unless the actor's role is `super` (docs/configuration.md)."""
    if command.actor.role != SUPER_ROLE:
        raise Forbidden(
            f"actor {command.actor.user_id!r} with role {command.actor.role!r} may not change "
            f"the billing configuration of tenant {command.tenant_id!r} (role super required)"
        )


def code_is_hard_to_guess(code: str) -> bool:
    """At least 5 distinct characters from two of lower case, upper case and digits: the rule
    for every coupon code, configured or in the catalog (docs/configuration.md)."""
    classes = [any(c.islower() for c in code), any(c.isupper() for c in code),
               any(c.isdigit() for c in code)]
    return len(set(code)) >= 5 and sum(classes) >= 2


def validate_config(command: BillingConfigSubmitted) -> None:
    """Checks beyond the contract's field rules; raises `InvalidMessage("validation_error")`.

    Price plan: one charge per meter. Coupon: a code with at least 5 distinct characters from
    two of lower case, upper case and digits. Credits: unique ids.
    """
    meters = [c.meter for c in command.price_plan.charges]
    if len(meters) != len(set(meters)):
        raise InvalidMessage("validation_error", f"price plan prices a meter twice: {meters}")
    if command.coupon is not None and not code_is_hard_to_guess(command.coupon.code):
        raise InvalidMessage("validation_error", "coupon code is too easy to guess")
    ids = [c.credit_id for c in command.credits]
    if len(ids) != len(set(ids)):
        raise InvalidMessage("validation_error", f"duplicate credit ids: {ids}")


def check_submission_order(
    current: BillingConfigSubmitted, command: BillingConfigSubmitted
) -> None:
    """Raise `PermanentError("superseded")` when `command` was submitted (`occurred_at`)
    before the tenant's `current` configuration: versions follow submission order, so a late
    arrival never replaces a newer submission (docs/configuration.md, "Submissions and
    versions"). Equal instants are accepted in arrival order."""
    if command.occurred_at < current.occurred_at:
        raise PermanentError(
            "superseded",
            f"configuration of tenant {command.tenant_id!r} submitted at "
            f"{command.occurred_at.isoformat()} is older than the current version, submitted "
            f"at {current.occurred_at.isoformat()}; submit it again to make it current",
        )


def next_status(current: InvoiceStatus, outcome: PaymentOutcome) -> InvoiceStatus:
    """The status after a payment outcome; never backwards.

    paid is final; a success moves any unpaid or overdue invoice to paid; a failure moves
    pending_payment to failed and leaves failed, overdue and paid as they are.
    """
    if current == InvoiceStatus.paid or outcome == "succeeded":
        return InvoiceStatus.paid
    if current == InvoiceStatus.pending_payment:
        return InvoiceStatus.failed
    return current


def invoice_id(tenant_id: str, period_start: date) -> str:
    """Deterministic invoice id: one per tenant and period."""
    return f"{tenant_id}:{period_start.isoformat()}"


def invoice_number(year: int, sequence: int) -> str:
    """`INV-YYYY-NNNN`: year of issue, then the year's gapless sequence
    (docs/design.md#statuses)."""
    return f"INV-{year:04d}-{sequence:04d}"


def invoice_counter(year: int) -> str:
    """The `_id` of the counter document (`seq`) that numbers the invoices of `year`."""
    return f"invoice-number:{year}"


def issued_event_id(inv_id: str) -> str:
    """The `InvoiceIssued` event id: a republish carries the same id."""
    return f"invoice-issued:{inv_id}"


def status_event_id(inv_id: str, status: InvoiceStatus, cause: str) -> str:
    """The `InvoiceStatusChanged` event id for a move to `status` caused by `cause` (a payment
    event id, or `clock` for overdue)."""
    return f"invoice-status:{inv_id}:{status}:{cause}"
