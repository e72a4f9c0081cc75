"""Billing API settings (`BILLING_*` environment variables; docs/api.md, "Settings")."""

from pydantic import Field

from services.invoicer.api import InvoicerSettings
from services.payments.api import PaymentsSettings


class ApiSettings(PaymentsSettings, InvoicerSettings):
    """Settings of `billing run api`: the connection settings every worker has, the command
    signing key (`BILLING_COMMAND_SIGNING_KEY`, read with `signing_key()`; the API signs the
    commands it publishes), the Stripe settings the payments operations need, and:

    - `api_host`, `api_port` (`BILLING_API_HOST`, `BILLING_API_PORT`): where it listens.
    - `api_rate_limit`: requests per API key and instance, in the `limits` library's notation
      (`600/minute`); `api_ingest_rate_limit` the same for `POST /v1/usage`.
    - `api_max_body_bytes`: larger request bodies get 413 (1 MiB).
    - `api_idempotency_ttl_seconds`: how long a POST's `Idempotency-Key` replays its first
      response (24 h, as Stripe).
    """

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    api_rate_limit: str = "1200/minute"
    api_ingest_rate_limit: str = "6000/minute"
    api_max_body_bytes: int = Field(default=1_048_576, ge=1)
    api_idempotency_ttl_seconds: int = Field(default=86_400, ge=1)
