"""Pure rules of usage aggregation: validation reasons, hour buckets, merging, folding."""

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.usage_collector.domain import Rejected, bucket_id, hour_of, parse
from services.usage_collector.merge import BatchMerge, fold, new_bucket

pytestmark = pytest.mark.unit

T0 = datetime(2013, 7, 1, 10, 15, tzinfo=UTC)


def event(n: int = 1, **over: object) -> bytes:
    data = {"meter": "cpu_hours", "quantity": "1.5", "service": "web"}
    data.update(over.pop("data", {}))  # type: ignore[arg-type]
    body = {
        "specversion": "1.0", "id": f"e{n}", "source": "test", "type": "billing.usage",
        "subject": "acme", "time": T0.isoformat(), "data": data,
    }
    body.update(over)
    return json.dumps(body).encode()


def test_an_event_lands_in_the_utc_hour_of_its_own_time() -> None:
    nairobi = timezone(timedelta(hours=3))
    assert hour_of(datetime(2013, 7, 1, 13, 59, 59, tzinfo=nairobi)) == datetime(
        2013, 7, 1, 10, tzinfo=UTC
    )
    sample = parse(event(time="2013-07-01T10:59:59.999+00:00"))
    assert sample.key == ("acme", "cpu_hours", "web", datetime(2013, 7, 1, 10, tzinfo=UTC))
    assert bucket_id(sample.key) == "acme|cpu_hours|web|2013-07-01T10"
    assert sample.event_id == "test/e1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2]", "validation_error"),
        (event(data={"quantity": "-1"}), "negative_quantity"),
        (event(data={"quantity": "NaN"}), "non_finite_quantity"),
        (event(data={"quantity": "Infinity"}), "non_finite_quantity"),
        (event(subject=""), "missing_subject"),
        (json.dumps({k: v for k, v in json.loads(event()).items() if k != "subject"}).encode(),
         "missing_subject"),
        (event(data={"meter": "tokens", "aggregation": "median"}), "unknown_aggregation"),
        (event(data={"meter": "tokens"}), "unknown_aggregation"),
        (event(data={"meter": "cpu_hours", "aggregation": "max"}), "aggregation_mismatch"),
        (event(data={"meter": "seats", "aggregation": "unique_count"}), "missing_resource_id"),
        (event(data={"quantity": "1" * 40}), "quantity_out_of_range"),
        (event(data={"quantity": "1e20"}), "quantity_out_of_range"),
        (event(data={"quantity": "1E+6000"}), "quantity_out_of_range"),
        (event(data={"quantity": "1e400"}), "quantity_out_of_range"),
        (event(data={"quantity": "1000000000000"}), "quantity_out_of_range"),
        (event(data={"quantity": "0.0000000000001"}), "quantity_out_of_range"),
        (event(data={"quantity": 1e20}), "quantity_out_of_range"),
        (event(time="2013-07-01T10:00:00"), "validation_error"),
        (event(type="other"), "validation_error"),
    ],
)
def test_each_invalid_event_is_rejected_with_its_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as caught:
        parse(raw)
    assert caught.value.reason == reason


def test_the_largest_quantity_with_the_most_places_is_accepted_exactly() -> None:
    sample = parse(event(data={"quantity": "999999999999.999999999999"}))
    assert str(sample.quantity) == "999999999999.999999999999"
    assert parse(event(data={"quantity": "1.50000000000000"})).quantity == Decimal("1.5")


def test_a_custom_meter_carries_its_own_aggregation() -> None:
    sample = parse(event(data={"meter": "tokens", "aggregation": "max", "quantity": 7}))
    assert (sample.aggregation, sample.quantity) == ("max", Decimal(7))
    assert parse(event(data={"meter": "storage_gb"})).aggregation == "avg"


def sample(n: int, qty: str, minutes: int = 0, resource: str | None = None) -> object:
    data = {"quantity": qty}
    if resource:
        data.update(meter="seats", aggregation="unique_count", resource_id=resource)
    return parse(event(n, time=(T0 + timedelta(minutes=minutes)).isoformat(), data=data))


def test_duplicates_within_a_batch_count_once_and_the_merge_is_exact() -> None:
    merge = BatchMerge()
    for n, qty, minutes in [(1, "0.1", 0), (2, "0.2", 30), (1, "0.1", 0), (3, "5", 40)]:
        merge.add(sample(n, qty, minutes))  # type: ignore[arg-type]
    assert (len(merge), merge.duplicates) == (3, 1)
    (hour,) = merge.buckets.values()
    delta = hour.total()
    assert (delta.sum, delta.count, delta.max) == (Decimal("5.3"), 3, Decimal(5))
    assert (delta.latest, delta.latest_time) == (Decimal(5), T0 + timedelta(minutes=40))


def test_re_merging_without_recorded_ids_drops_only_those() -> None:
    merge = BatchMerge()
    for n in range(5):
        merge.add(sample(n, str(n), n))  # type: ignore[arg-type]
    rest = merge.without({"test/e0", "test/e4"})
    delta = next(iter(rest.buckets.values())).total()
    assert (delta.sum, delta.count, delta.max, delta.latest) == (6, 3, 3, 3)


def test_unique_count_keeps_distinct_resources() -> None:
    merge = BatchMerge()
    for n, res in enumerate(["a", "b", "a", "c"]):
        merge.add(sample(n, "1", n, resource=res))  # type: ignore[arg-type]
    delta = next(iter(merge.buckets.values())).total()
    assert delta.resources == {"a", "b", "c"}
    assert delta.count == 4


def test_folding_into_a_stored_bucket_adds_sums_and_keeps_the_newest_latest() -> None:
    merge = BatchMerge()
    merge.add(sample(1, "2", 10))  # type: ignore[arg-type]
    key, delta = next(iter(merge.buckets.items()))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    stored = new_bucket(key, delta, now)
    assert stored["_id"] == "acme|cpu_hours|web|2013-07-01T10"
    older = BatchMerge()
    older.add(sample(2, "9", 5))  # type: ignore[arg-type]
    folded = fold(stored, next(iter(older.buckets.values())), now)
    assert (folded["sum"], folded["count"], folded["max"]) == (Decimal(11), 2, Decimal(9))
    assert folded["latest"] == Decimal(2), "an older event must not replace latest"
    assert folded["latest_time"] == T0 + timedelta(minutes=10)


def test_latest_on_equal_times_does_not_depend_on_arrival_order() -> None:
    a, b = BatchMerge(), BatchMerge()
    for merge, order in ((a, ["1", "4"]), (b, ["4", "1"])):
        for n, qty in enumerate(order):
            merge.add(sample(n, qty, 0))  # type: ignore[arg-type]
    latest_a = next(iter(a.buckets.values())).total().latest
    assert latest_a == next(iter(b.buckets.values())).total().latest == 4


def test_a_bucket_sum_that_would_need_more_than_34_digits_rejects_only_that_event() -> None:
    merge = BatchMerge()
    big = sample(1, "1", 0)._replace(quantity=Decimal("9999999999999999999999.999999999999"))  # type: ignore[attr-defined]
    merge.add(big)
    with pytest.raises(Rejected) as caught:
        merge.add(sample(2, "0.000000000002", 20))  # type: ignore[arg-type]
    assert caught.value.reason == "quantity_out_of_range"
    assert merge.add(sample(3, "0.000000000001", 40))  # type: ignore[arg-type]
    assert (len(merge), next(iter(merge.buckets.values())).total().sum) == (2, 10**22)


def test_each_quarter_hour_keeps_its_own_sub_totals() -> None:
    merge = BatchMerge()
    for n, qty, minutes in [(1, "1", 0), (2, "2", 14), (3, "4", 15), (4, "8", 59)]:
        merge.add(sample(n, qty, minutes - 15))  # type: ignore[arg-type]
    key, delta = next(iter(merge.buckets.items()))
    doc = new_bucket(key, delta, datetime(2026, 1, 1, tzinfo=UTC))
    assert {m: (q["sum"], q["count"]) for m, q in doc["quarters"].items()} == {
        "0": (Decimal(3), 2), "15": (Decimal(4), 1), "45": (Decimal(8), 1)
    }
    assert (doc["sum"], doc["count"], doc["latest"]) == (Decimal(15), 4, Decimal(8))


def test_folding_into_a_bucket_stored_without_quarters_keeps_its_events_in_the_first() -> None:
    merge = BatchMerge()
    merge.add(sample(1, "2", 10))  # type: ignore[arg-type]
    key, delta = next(iter(merge.buckets.items()))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    legacy = {k: v for k, v in new_bucket(key, delta, now).items() if k != "quarters"}
    later = BatchMerge()
    later.add(sample(2, "5", 35))  # type: ignore[arg-type]
    folded = fold(legacy, next(iter(later.buckets.values())), now)
    assert {m: q["sum"] for m, q in folded["quarters"].items()} == {
        "0": Decimal(2), "45": Decimal(5)
    }
    assert (folded["sum"], folded["count"]) == (Decimal(7), 2)
