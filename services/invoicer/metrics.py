"""Invoicer metrics (`billing_` prefix), counted at the edge where commands are refused."""

from prometheus_client import Counter

CONFIG_REFUSALS = Counter(
    "billing_config_commands_refused_total",
    "Configuration commands refused by the invoicer, by cause: unsigned, bad_signature, "
    "forbidden (role), validation_error, superseded.",
    ["cause"],
)
