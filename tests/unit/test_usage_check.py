"""`check_usage`, the collector's acceptance for other publishers: it accepts exactly what the
collector aggregates and refuses the rest with the collector's dead-letter reason."""

import json
from typing import Any

import pytest

from services.usage_collector.acceptance import parse
from services.usage_collector.api import Rejected, check_usage

pytestmark = pytest.mark.unit


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "specversion": "1.0", "id": "e1", "source": "web", "type": "billing.usage",
        "subject": "acme", "time": "2013-09-01T10:00:00Z",
        "data": {"meter": "cpu_hours", "quantity": "1.5", "service": "vm"},
    }
    for key, value in changes.items():
        if key.startswith("data_"):
            base["data"] = {**base["data"], key.removeprefix("data_"): value}
        else:
            base[key] = value
    return base


def test_a_valid_event_comes_back_validated() -> None:
    checked = check_usage(json.dumps(event()).encode())
    assert checked.event_id == "web/e1"
    assert str(checked.data.quantity) == "1.5"


@pytest.mark.parametrize(("changes", "reason", "loc"), [
    ({"data_quantity": "-1"}, "negative_quantity", "data.quantity"),
    ({"subject": None}, "missing_subject", "subject"),
    ({"data_meter": "gpu_hours"}, "unknown_aggregation", None),
    ({"data_aggregation": "max"}, "aggregation_mismatch", None),
    ({"data_meter": "seats", "data_aggregation": "unique_count"}, "missing_resource_id", None),
])
def test_refusals_carry_the_collectors_reason(
    changes: dict[str, Any], reason: str, loc: str | None
) -> None:
    raw = json.dumps(event(**changes)).encode()
    with pytest.raises(Rejected) as refused:
        check_usage(raw)
    assert refused.value.reason == reason
    assert [err_loc for err_loc, _ in refused.value.errors] == ([loc] if loc else [])
    with pytest.raises(Rejected) as dead_lettered:
        parse(raw)
    assert dead_lettered.value.reason == reason
