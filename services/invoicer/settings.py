"""Invoicer settings (`BILLING_*` environment variables)."""

from pydantic import Field, SecretStr

from services.common.settings import CommonSettings

#: The variable holding the key that signs configuration commands.
SIGNING_KEY_VARIABLE = "BILLING_COMMAND_SIGNING_KEY"
#: Shortest accepted key: the HMAC-SHA256 output length (RFC 2104 section 3).
MIN_SIGNING_KEY_BYTES = 32


class MissingSigningKey(RuntimeError):
    """`BILLING_COMMAND_SIGNING_KEY` is unset or too short: the invoicer does not start and
    `billing config apply` signs nothing."""


class InvoicerSettings(CommonSettings):
    """`invoicer_cycle_interval_seconds`: how often `billing run invoicer` runs the cycle on the
    real clock (`BILLING_INVOICER_CYCLE_INTERVAL_SECONDS`, default 60; 0 = never, the clock is
    then driven from outside with `billing cycle run --as-of`).

    `invoicer_issue_batch`: how many due (tenant, period)s the invoice run issues in one
    transaction (`BILLING_INVOICER_ISSUE_BATCH`, default 200; docs/invoicing.md, "The invoice
    run").

    `command_signing_key` (`BILLING_COMMAND_SIGNING_KEY`, no default): the shared secret
    configuration commands are signed with (HMAC-SHA256, at least 32 bytes; docs/configuration.md,
    "Signed commands"). Read it with `signing_key()`.
    """

    invoicer_cycle_interval_seconds: float = Field(default=60.0, ge=0)
    invoicer_issue_batch: int = Field(default=200, ge=1, le=2000)
    command_signing_key: SecretStr | None = None

    def signing_key(self) -> bytes:
        """The command signing key as bytes (UTF-8 of the variable's value).

        Raises `MissingSigningKey`, naming the variable, when it is unset or shorter than 32
        bytes.
        """
        raw = self.command_signing_key.get_secret_value() if self.command_signing_key else ""
        key = raw.encode("utf-8")
        if not key:
            raise MissingSigningKey(
                f"{SIGNING_KEY_VARIABLE} is not set: configuration commands cannot be signed or "
                "verified (set it to the same secret for the invoicer and for the operators' "
                "`billing config apply`)"
            )
        if len(key) < MIN_SIGNING_KEY_BYTES:
            raise MissingSigningKey(
                f"{SIGNING_KEY_VARIABLE} is too short: use at least {MIN_SIGNING_KEY_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return key
