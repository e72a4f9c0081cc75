"""Settings of the usage collector and importer (`BILLING_*` environment variables)."""

from pydantic import Field

from services.common.settings import CommonSettings
from services.usage_collector.names import WORKER


class UsageSettings(CommonSettings):
    """Batching and consumer knobs of the usage collector.

    A write starts when none is in flight and `usage_min_batch_events` are pending (or
    `usage_linger_seconds` passed since the pending batch began). While a write is in flight the
    collector keeps consuming and merging until `usage_max_batch_events` are pending
    (checked after each poll, so a batch can exceed it by one poll), then waits for it
    (back-pressure); the pending events form the next transaction.
    Fetch sizes are in bytes. Under a backlog, larger batches put more events into each
    bucket write (one update per bucket and batch); at 50,000 events the collector's peak
    RSS stays below 200 MB (bench/usage_ingest.py).
    """

    usage_group: str = WORKER
    usage_max_batch_events: int = Field(default=50_000, ge=1)
    usage_min_batch_events: int = Field(default=2_000, ge=1)
    usage_linger_seconds: float = Field(default=0.05, ge=0)
    usage_fetch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    usage_max_partition_fetch_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    usage_write_retry_max_seconds: float = Field(default=5.0, gt=0)
    #: Bound on one batch transaction attempt; past it the attempt is aborted and retried.
    usage_write_attempt_timeout_seconds: float = Field(default=60.0, gt=0)
    #: How long a rebalance waits for the write in flight before cancelling it (the records
    #: not written are redelivered); must stay well below the rebalance timeout.
    usage_revoke_grace_seconds: float = Field(default=5.0, gt=0)
    #: Kafka group session timeout: a killed collector's partitions move after this long.
    usage_session_timeout_seconds: float = Field(default=10.0, ge=1)
    #: How long the group coordinator waits for members to rejoin during a rebalance.
    usage_rebalance_timeout_seconds: float = Field(default=30.0, ge=1)
