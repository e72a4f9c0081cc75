"""Settings of the payments worker and the Stripe webhook ingress (`BILLING_*` variables)."""

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from services.common.settings import CommonSettings


class PaymentsSettings(CommonSettings):
    """Stripe access, retry and dunning settings.

    `stripe_api_base` points the SDK at Stripe (or the fake: `http://127.0.0.1:PORT`).
    `payments_dunning_schedule_days`: retries of a failed invoice, in days after its first
    failure (default 3, 5, 7). `payments_dunning_interval_seconds`: how often the worker runs
    due retries on the real clock (0 = never; the demo drives dunning with `--as-of`).
    `stripe_webhook_secret` (`BILLING_STRIPE_WEBHOOK_SECRET`) has no default: the payments
    worker and the webhook ingress refuse to start without it (`require_webhook_secret`).
    A message Stripe cannot serve is retried with back-off doubling up to
    `payments_retry_cap_seconds` for as long as the outage lasts; a charge holds its invoice's
    lease for `payments_charge_lease_seconds` (docs/payments.md "Outages", "Charge lease").
    """

    stripe_api_base: str = "https://api.stripe.com"
    stripe_api_key: str = "sk_test_unset"
    stripe_webhook_secret: str | None = None
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1)
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)
    stripe_retries: int = Field(default=4, ge=0, description="transient-error retries per call")
    stripe_retry_base_seconds: float = Field(default=0.5, ge=0)
    stripe_webhooks_host: str = "127.0.0.1"
    stripe_webhooks_port: int = Field(default=8470, ge=0, le=65535)
    stripe_webhooks_path: str = "/stripe/webhook"
    payments_dunning_schedule_days: Annotated[tuple[int, ...], NoDecode] = (3, 5, 7)
    payments_dunning_interval_seconds: float = Field(default=300, ge=0)
    payments_retry_cap_seconds: float = Field(default=60.0, gt=0)
    payments_charge_lease_seconds: float = Field(default=600.0, ge=0)

    def require_webhook_secret(self) -> str:
        """The webhook signing secret; raises `SystemExit` naming the variable when unset."""
        if not self.stripe_webhook_secret:
            raise SystemExit(
                "BILLING_STRIPE_WEBHOOK_SECRET is not set: the Stripe webhook signing secret "
                "(whsec_..., from the Stripe dashboard or `billing dev up`) is required")
        return self.stripe_webhook_secret

    @field_validator("payments_dunning_schedule_days", mode="before")
    @classmethod
    def _days_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(part) for part in value.replace(",", " ").split())
        return value
