"""Taking a whole poll into a pending batch equals taking its records one poll each."""

import json
from typing import NamedTuple

import pytest

from services.usage_collector.handlers import PendingBatch, record_id

pytestmark = pytest.mark.unit


class Record(NamedTuple):
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def event(n: int, **data: object) -> bytes:
    body = {
        "specversion": "1.0", "id": f"e{n}", "source": "test", "type": "billing.usage",
        "subject": "acme", "time": "2013-07-01T10:15:00Z",
        "data": {"meter": "cpu_hours", "quantity": f"{n}.5", "service": "web", **data},
    }
    return json.dumps(body).encode()


POLL = [
    Record(10, b"acme", event(1)),
    Record(11, b"acme", b"{not json"),
    Record(12, b"acme", event(2)),
    Record(13, None, None),
    Record(14, b"acme", event(1)),  # a duplicate inside the batch
    Record(15, b"acme", event(3, quantity="-1")),
    Record(16, b"acme", event(4, meter="tokens")),
    Record(17, b"acme", event(5, quantity=2)),
]


def test_a_poll_is_merged_and_dead_lettered_exactly_as_record_by_record() -> None:
    one_by_one, whole = PendingBatch("usage"), PendingBatch("usage")
    for r in POLL:
        one_by_one.take_records(3, [r])
    whole.take_records(3, POLL)
    whole.take_records(4, [])
    for batch in (one_by_one, whole):
        assert (len(batch), batch.offsets) == (8, {3: 18})
        assert [(d.source.offset, d.reason) for d in batch.dead] == [
            (11, "invalid_json"), (13, "invalid_json"), (15, "negative_quantity"),
            (16, "unknown_aggregation"),
        ]
        assert (len(batch.merge), batch.merge.duplicates) == (3, 1)
    assert whole.dead == one_by_one.dead
    assert whole.merge.buckets == one_by_one.merge.buckets
    assert [record_id(d) for d in whole.dead][0] == "dl|usage|3|11"


def test_rejecting_a_bucket_dead_letters_each_of_its_records_once_and_keeps_the_rest() -> None:
    batch = PendingBatch("usage")
    other = json.dumps({**json.loads(event(7)), "time": "2013-07-01T11:15:00Z"}).encode()
    batch.take_records(3, POLL + [Record(18, b"acme", other)])
    (full,) = [k for k in batch.merge.buckets if k[3].hour == 10]
    new = batch.reject_buckets({full})
    assert [(d.source.offset, d.reason) for d in new] == [
        (10, "quantity_out_of_range"), (12, "quantity_out_of_range"),
        (14, "quantity_out_of_range"), (17, "quantity_out_of_range"),
    ]
    assert (len(batch.merge), batch.merge.duplicates) == (1, 0), "the duplicate is dead now"
    assert [k[3].hour for k in batch.merge.buckets] == [11]
    assert len(batch.dead) == 8
