"""Invoicer settings (`BILLING_*` environment variables)."""

from pydantic import Field

from services.common.settings import CommonSettings

SERVICE = "invoicer"


class InvoicerSettings(CommonSettings):
    """`invoicer_cycle_interval_seconds`: how often `billing run invoicer` runs the cycle on the
    real clock (`BILLING_INVOICER_CYCLE_INTERVAL_SECONDS`, default 60; 0 = never, the clock is
    then driven from outside with `billing cycle run --as-of`)."""

    invoicer_cycle_interval_seconds: float = Field(default=60.0, ge=0)
    invoicer_retry_backoff_seconds: float = Field(default=1.0, ge=0)
