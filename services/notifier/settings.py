"""Notifier settings: the common `BILLING_*` variables plus SMTP and message options.

`BILLING_SMTP_HOST`, `BILLING_SMTP_PORT`, `BILLING_SMTP_USERNAME`, `BILLING_SMTP_PASSWORD`,
`BILLING_SMTP_STARTTLS` (upgrade a plain connection), `BILLING_SMTP_TLS` (implicit TLS, port
465), `BILLING_SMTP_FROM`. This module is the only place of the notifier reading the environment.
"""

from pydantic import Field

from services.common.settings import CommonSettings


class NotifierSettings(CommonSettings):
    """Settings of `billing run notifier`.

    Retries: a temporary SMTP failure (4xx, connection refused, timeout) is retried in-process
    `smtp_retry_attempts` times with exponential back-off from `smtp_retry_base_seconds` up to
    `smtp_retry_max_seconds`; after that the runtime retries the message in place with the
    common back-off (offset not committed until it passes; docs/design.md#error-policy), so
    nothing is dropped while the server is down.
    """

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_from: str = "Billing <billing@billing.example>"
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    smtp_retry_attempts: int = Field(default=5, ge=1)
    smtp_retry_base_seconds: float = Field(default=0.5, ge=0)
    smtp_retry_max_seconds: float = Field(default=30.0, ge=0)
    #: Babel locale for amounts and dates in emails (en_US gives `$123.45`, `€112.68`,
    #: `KES 14,961.09`).
    email_locale: str = "en_US"
    #: Pay-link placeholder; `{invoice_id}` and `{invoice_number}` are filled in.
    pay_link_template: str = "https://billing.example/pay/{invoice_number}"
    # seller_name, seller_address, seller_tax_id: CommonSettings (shared with the invoices)
