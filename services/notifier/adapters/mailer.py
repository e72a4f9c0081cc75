"""Mailers: the `Mailer` protocol, the SMTP adapter (aiosmtplib) and an in-memory one.

Failures are classified at this edge: `TemporaryMailError` (connection refused or dropped,
timeouts, any 4xx, authentication or sender problems: the same message may go through later)
and `PermanentMailError` (a 5xx refusal of the recipient or of the message itself).
"""

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from services.common.errors import PermanentError, RetryableError
from services.notifier.settings import NotifierSettings


class TemporaryMailError(RetryableError):
    """The SMTP server was unreachable or answered 4xx; try again later."""


class PermanentMailError(PermanentError):
    """The SMTP server refused the recipient or the message with a 5xx; `code` is the reply."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__("smtp_permanent_failure", f"{code} {detail}")
        self.code = code


class Mailer(Protocol):
    """Hands one message to a mail server.

    `send` returns the server's final reply once it accepted the message (after DATA); raises
    `TemporaryMailError` or `PermanentMailError`.
    """

    async def send(self, message: EmailMessage) -> str: ...


def classify(exc: Exception) -> TemporaryMailError | PermanentMailError:
    """Map an aiosmtplib or socket error to the two branches above."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        worst = max(exc.recipients, key=lambda r: r.code)
        return _by_code(worst.code, f"{worst.recipient}: {worst.message}")
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return _by_code(exc.code, exc.message)
    return TemporaryMailError(f"{type(exc).__name__}: {exc}")


def _by_code(code: int, detail: str) -> TemporaryMailError | PermanentMailError:
    if 500 <= code < 600:
        return PermanentMailError(code, detail)
    return TemporaryMailError(f"{code} {detail}")


class SmtpMailer:
    """Sends through the SMTP server in `BILLING_SMTP_*` (one connection per message)."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._settings = settings

    async def send(self, message: EmailMessage) -> str:
        s = self._settings
        try:
            _errors, reply = await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                use_tls=s.smtp_tls,
                start_tls=s.smtp_starttls,
                timeout=s.smtp_timeout_seconds,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise classify(exc) from exc
        return reply


@dataclass
class InMemoryMailer:
    """Keeps sent messages in `sent`; `failures` are raised, in order, before sending works."""

    sent: list[EmailMessage] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    async def send(self, message: EmailMessage) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)
        return "250 OK"
