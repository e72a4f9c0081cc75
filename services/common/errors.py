"""Typed errors of the billing platform.

    BillingError
    ├── RetryableError        the same input may succeed later (broker, database, SMTP or
    │   │                     Stripe unavailable, write conflict): retry with back-off
    │   └── DependencyUnavailable
    └── PermanentError        the input itself is wrong: dead-letter it with `reason`
        ├── InvalidMessage    not JSON, or it fails its contract
        └── Forbidden         the actor may not do this (reason `forbidden`)

Subscribers map the two branches: retryable -> do not commit, try again; permanent ->
dead-letter with the reason and go on.
"""


class BillingError(Exception):
    """Root of every error the platform raises on purpose."""


class RetryableError(BillingError):
    """A transient failure: the same input may succeed later."""


class DependencyUnavailable(RetryableError):
    """A server the worker depends on did not answer in time."""


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
