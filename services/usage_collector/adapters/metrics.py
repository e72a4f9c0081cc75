"""Prometheus metrics of the usage collector (served on the worker's `/metrics`)."""

import collections
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from math import inf
from operator import attrgetter

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from services.usage_collector.acceptance import Sample

EVENTS = Counter(
    "billing_usage_events_total",
    "Usage events consumed, by outcome (aggregated, duplicate, dead_lettered).",
    ["outcome"],
)
BATCH_SIZE = Histogram(
    "billing_usage_batch_size_events",
    "Kafka records per MongoDB batch transaction.",
    buckets=(1, 10, 100, 500, 1_000, 2_500, 5_000, 10_000, 20_000, 40_000, 80_000),
)
WRITE_SECONDS = Histogram(
    "billing_usage_write_seconds",
    "Time to make one batch durable (dead letters, transaction, offset commit).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WRITE_RETRIES = Counter(
    "billing_usage_write_retries_total", "Batch transactions retried after a transient error."
)
CONSUMER_LAG = Gauge(
    "billing_usage_consumer_lag_messages",
    "Records between the partition's high watermark and the next record to consume.",
    ["partition"],
)
BUCKETS_WRITTEN = Counter(
    "billing_usage_buckets_written_total", "Hour buckets inserted or updated."
)
RELEASES_ABANDONED = Counter(
    "billing_usage_releases_abandoned_total",
    "Rebalances or stops that cancelled a batch write past the grace (its records are "
    "redelivered, not lost).",
)
THRESHOLD_EVENTS = Counter(
    "billing_usage_threshold_events_total",
    "UsageThresholdReached events written to the collector's outbox, by threshold (80, 100).",
    ["threshold"],
)
LIMITS_UPDATES = Counter(
    "billing_usage_limits_updates_total",
    "UsageLimitsChanged messages, by outcome (applied, stale: an older or repeated version).",
    ["outcome"],
)
DOCUMENTS_WRITTEN = Counter(
    "billing_usage_documents_written_total",
    "MongoDB documents inserted, updated or upserted by committed batch transactions, by "
    "collection.",
    ["collection"],
)

#: Upper bounds (seconds) of `billing_usage_event_lag_seconds`.
LAG_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, 86400)
_LAG_NAME = "billing_usage_event_lag_seconds"
_SINCE = ("event_time", "publish_time")
_LAG_HELP = (
    "Seconds from an aggregated event's time (since=event_time: its CloudEvents time; "
    "since=publish_time: its Kafka record timestamp) to the commit of the batch transaction "
    "that aggregated it; once per aggregated event, duplicates excluded."
)


class EventLag(Collector):
    """The `billing_usage_event_lag_seconds` histogram, fed a whole batch at a time.

    prometheus_client's `Histogram` takes one value per call, too slow for tens of
    thousands of events per batch; this collector keeps its own per-bucket counts and exact
    sum (what a `Histogram` exposes) and adds a batch's already bucketed counts at once.
    """

    def __init__(self) -> None:
        """Empty counts for both `since` labels."""
        self._lock = threading.Lock()
        self._counts = {since: [0] * (len(LAG_BUCKETS) + 1) for since in _SINCE}
        self._sums = dict.fromkeys(_SINCE, 0.0)

    def observe_groups(self, since: str, groups: Iterable[tuple[float, int]]) -> None:
        """Observe `count` times each `value` (seconds; a negative one, an event time ahead
        of this host's clock, counts as 0) under label `since`."""
        counts, total = [0] * (len(LAG_BUCKETS) + 1), 0.0
        for value, count in groups:
            value = max(value, 0.0)
            counts[bisect_left(LAG_BUCKETS, value)] += count
            total += value * count
        with self._lock:
            mine = self._counts[since]
            for i, count in enumerate(counts):
                mine[i] += count
            self._sums[since] += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        """The histogram family: cumulative buckets, `+Inf`, sum, per `since`."""
        family = HistogramMetricFamily(_LAG_NAME, _LAG_HELP, labels=["since"])
        with self._lock:
            for since in _SINCE:
                running, buckets = 0, []
                for bound, count in zip((*map(float, LAG_BUCKETS), inf), self._counts[since],
                                        strict=True):
                    running += count
                    buckets.append(("+Inf" if bound == inf else repr(bound), running))
                family.add_metric([since], buckets, self._sums[since])
        yield family


EVENT_LAG = EventLag()
REGISTRY.register(EVENT_LAG)


def observe_lags(
    samples: Sequence[Sample], committed_at: float, lag: EventLag = EVENT_LAG
) -> None:
    """Feed `lag` (the registered histogram unless given) with a batch's aggregated
    `samples`, committed at `committed_at` (seconds since the epoch). Grouped by equal event
    time and by equal publish time (events share them): the per-event cost is one
    dictionary count each. A sample without publish time (0, or Kafka's -1) counts for
    event_time only."""
    if not samples:
        return
    times = collections.Counter(map(_TIME, samples))
    lag.observe_groups(
        "event_time", ((committed_at - t.timestamp(), n) for t, n in times.items()))
    published = collections.Counter(map(_PUBLISHED, samples))
    lag.observe_groups(
        "publish_time", ((committed_at - ms / 1000, n) for ms, n in published.items() if ms > 0))


_TIME = attrgetter("time")
_PUBLISHED = attrgetter("published_ms")
