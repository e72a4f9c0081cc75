"""The collector's freshness histogram: batch-fed counts that read as a Prometheus histogram."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry

from services.usage_collector.acceptance import Sample
from services.usage_collector.adapters.metrics import EventLag, observe_lags

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def sample(n: int, age: timedelta, published_age: timedelta | None) -> Sample:
    time = NOW - age
    published = 0 if published_age is None else int((NOW - published_age).timestamp() * 1000)
    return Sample(f"test/e{n}", ("acme", "cpu_hours", "web", time.replace(minute=0)), "sum",
                  Decimal(1), time, None, 0, "test", published)


def histogram(registry: CollectorRegistry, since: str) -> dict[str, float]:
    name = "billing_usage_event_lag_seconds"
    (family,) = [f for f in registry.collect() if f.name == name]
    return {s.labels.get("le", s.name.rsplit("_", 1)[1]): s.value
            for s in family.samples if s.labels["since"] == since}


def test_a_batch_of_lags_reads_as_cumulative_buckets_with_an_exact_sum() -> None:
    registry, lag = CollectorRegistry(), EventLag()
    registry.register(lag)
    lag.observe_groups("event_time", [(0.3, 2), (0.5, 1), (7.0, 4), (-2.0, 1)])
    lag.observe_groups("event_time", [(100_000.0, 1)])
    got = histogram(registry, "event_time")
    assert (got["0.01"], got["0.25"], got["0.5"], got["1.0"], got["10.0"]) == (1, 1, 4, 4, 8)
    assert (got["86400.0"], got["+Inf"], got["count"]) == (8, 9, 9)
    assert got["sum"] == 0.3 * 2 + 0.5 + 7.0 * 4 + 0 + 100_000.0
    assert histogram(registry, "publish_time")["count"] == 0


def test_each_aggregated_event_is_observed_once_per_clock_it_has() -> None:
    registry, lag = CollectorRegistry(), EventLag()
    registry.register(lag)
    samples = [sample(1, timedelta(seconds=3), timedelta(seconds=1)),
               sample(2, timedelta(seconds=3), timedelta(seconds=1)),
               sample(3, timedelta(hours=2), None),  # no publish time known
               sample(4, timedelta(hours=2), None)._replace(published_ms=-1)]  # Kafka's "none"
    observe_lags(samples, NOW.timestamp(), lag)
    event, publish = histogram(registry, "event_time"), histogram(registry, "publish_time")
    assert (event["5.0"], event["3600.0"], event["86400.0"], event["sum"]) == (2, 2, 4, 14406.0)
    assert (publish["1.0"], publish["count"], publish["sum"]) == (2, 2, 2.0)
