"""Settings every worker shares, read from `BILLING_*` environment variables.

Each service's `settings.py` subclasses `CommonSettings`; nothing else reads the environment.
`.billing/dev.env` written by `billing dev up` holds the same variables for the embedded stack.
"""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Connection and naming settings shared by all workers.

    `topic_prefix` and `mongo_db` let several platforms (or tests) share one Kafka cluster and
    one MongoDB server without seeing each other's data.
    """

    model_config = SettingsConfigDict(env_prefix="BILLING_", extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_enable_idempotence: bool = False
    topic_prefix: str = ""
    #: put between the topic prefix and a worker's group name: a new value gives every worker
    #: new consumer groups, which start from each partition's first record (a replay)
    group_prefix: str = ""
    topic_partitions: int = Field(default=0, ge=0, description="0: the defaults in contracts")
    mongo_uri: str = "mongodb://127.0.0.1:27017/?directConnection=true"
    mongo_db: str = "billing"
    ops_host: str = "127.0.0.1"
    ops_port: int = Field(default=0, ge=0, le=65535, description="metrics/health; 0 = any free")
    log_level: str = "INFO"
    log_json: bool = True
    shutdown_timeout_seconds: float = 20.0
    clock_mode: Literal["wall", "event"] = "wall"
    retry_base_seconds: float = Field(
        default=0.2, gt=0, description="first back-off delay of a retryable failure"
    )
    retry_cap_seconds: float = Field(
        default=30.0, gt=0, description="longest back-off delay of a retryable failure"
    )
    #: Who issues the invoices, printed on every invoice document and email
    #: (`BILLING_SELLER_NAME`, `BILLING_SELLER_ADDRESS` with newlines between its lines,
    #: `BILLING_SELLER_TAX_ID`; docs/operations.md, "Seller details").
    seller_name: str = "Billing Platform"
    seller_address: str = ""
    seller_tax_id: str = ""

    def topic(self, name: str) -> str:
        """The real topic name for a contract topic (`billing.usage.v1` -> prefix + name)."""
        return f"{self.topic_prefix}{name}"

    def group(self, name: str) -> str:
        """The consumer group id for a worker, namespaced like the topics (and by
        `group_prefix`)."""
        return f"{self.topic_prefix}{self.group_prefix}{name}"
