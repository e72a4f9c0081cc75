"""Notification outcomes on `billing.notification.v1` and dead letters on
`billing.dead-letter.v1`."""

from typing import Literal

from pydantic import EmailStr, Field

from contracts.base import Event

NotificationKind = Literal["invoice_issued", "payment_failed", "overdue", "receipt"]


class NotificationSent(Event):
    """An email of `kind` about an invoice was accepted by the SMTP server."""

    notification_id: str = Field(min_length=1)
    kind: NotificationKind
    tenant_id: str = Field(min_length=1)
    invoice_id: str = Field(min_length=1)
    invoice_number: str = Field(min_length=1)
    recipient: EmailStr
    subject: str
    message_id: str


class NotificationFailed(Event):
    """An email could not be delivered (a permanent SMTP refusal); `reason` says why."""

    notification_id: str = Field(min_length=1)
    kind: NotificationKind
    tenant_id: str = Field(min_length=1)
    invoice_id: str = Field(min_length=1)
    invoice_number: str = Field(min_length=1)
    recipient: EmailStr
    reason: str


class DeadLettered(Event):
    """A message a worker could not process, kept with everything needed to replay it.

    `original` is the original bytes as text (`original_encoding` "utf-8") or base64 when they
    were not valid UTF-8; `reason` is a short machine-readable code (e.g. `invalid_json`,
    `validation_error`, `forbidden`) and `detail` the human explanation.
    """

    service: str = Field(min_length=1)
    topic: str
    partition: int = Field(ge=-1)
    offset: int = Field(ge=-1)
    key: str | None = None
    original: str
    original_encoding: Literal["utf-8", "base64"] = "utf-8"
    reason: str = Field(min_length=1)
    detail: str = ""
