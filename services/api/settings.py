"""Billing API settings (`BILLING_*` environment variables; docs/api.md, "Settings")."""

import hashlib
import hmac

from pydantic import Field, SecretStr

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
    - `portal_url` (`BILLING_PORTAL_URL`): the public base URL of this API as users' browsers
      reach it (portal links printed by `billing portal link`; default
      `http://{api_host}:{api_port}`). Links made through the API use the request's own URL.
    - `portal_secret` (`BILLING_PORTAL_SECRET`): signs portal session cookies; every API
      instance needs the same value. Unset: derived from the command signing key.
    - `portal_session_minutes`: how long a portal session lasts (8 h); `portal_link_minutes`:
      how long a portal link can be opened (1 h, single use).
    - `portal_secure_cookies`: send session cookies with `Secure` (also implied by an
      `https://` `portal_url`).
    - `api_dead_letter_consumer` (`BILLING_API_DEAD_LETTER_CONSUMER`): keep the platform's
      dead letters for `GET /v1/dead-letters` (on; off only where nothing lists them, such as
      tests of other endpoints: leaving a consumer group that is still joining takes seconds).
    """

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    api_rate_limit: str = "1200/minute"
    api_ingest_rate_limit: str = "6000/minute"
    api_max_body_bytes: int = Field(default=1_048_576, ge=1)
    api_idempotency_ttl_seconds: int = Field(default=86_400, ge=1)
    portal_url: str = ""
    portal_secret: SecretStr | None = None
    portal_session_minutes: int = Field(default=480, ge=1)
    portal_link_minutes: int = Field(default=60, ge=1)
    portal_secure_cookies: bool = False
    api_dead_letter_consumer: bool = True

    def portal_base_url(self) -> str:
        """`portal_url` without a trailing slash, else `http://{api_host}:{api_port}`."""
        return (self.portal_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    def secure_cookies(self) -> bool:
        """Whether portal cookies carry `Secure`: set, or the portal is served over HTTPS."""
        return self.portal_secure_cookies or self.portal_url.lower().startswith("https://")

    def portal_signing_secret(self) -> bytes:
        """The secret that signs portal cookies: `portal_secret`, else an HMAC-SHA256 of the
        command signing key (raises `MissingSigningKey` when neither is set)."""
        if self.portal_secret is not None and self.portal_secret.get_secret_value():
            return self.portal_secret.get_secret_value().encode("utf-8")
        return hmac.new(self.signing_key(), b"billing portal sessions", hashlib.sha256).digest()
