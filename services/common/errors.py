"""Typed errors of the billing platform.

    BillingError
    ├── RetryableError        the same input may succeed later (broker, database, SMTP or
    │   │                     Stripe unavailable, write conflict): retry with back-off
    │   └── DependencyUnavailable
    └── PermanentError        the input itself is wrong: dead-letter it with `reason`
        ├── InvalidMessage    not JSON, or it fails its contract
        └── Forbidden         the actor may not do this (reason `forbidden`)

The consumer runtime (`services/common/consumer.py`) maps them in one place: retryable ->
retry in place with capped back-off until it passes (never committed before); permanent ->
dead-letter with the reason and go on; any other exception is a bug -> dead-letter
`internal_error` and go on. Adapters raise these types, never a driver's own errors
(docs/design.md#error-policy).
"""


class BillingError(Exception):
    """Root of every error the platform raises on purpose."""


class RetryableError(BillingError):
    """A transient failure: the same input may succeed later."""


class DependencyUnavailable(RetryableError):
    """A server the worker depends on (MongoDB, the broker, SMTP, Stripe) did not answer in
    time or was interrupted; the driver's error is the `__cause__`."""


class PermanentError(BillingError):
    """The input cannot be processed as it is; `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class InvalidMessage(PermanentError):
    """The message is not JSON or does not match its contract."""


class Forbidden(PermanentError):
    """The actor's role does not allow the command."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("forbidden", detail)
