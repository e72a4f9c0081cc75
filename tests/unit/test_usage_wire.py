"""The collector's fast decoder agrees with the contract (`domain.parse`) on every input."""

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.usage_collector.domain import Rejected, Sample, parse
from services.usage_collector.wire import Decoder, decode

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "specversion": "1.0", "id": "e1", "source": "test", "type": "billing.usage",
    "subject": "acme", "time": "2013-07-01T10:15:00+00:00",
    "data": {"meter": "cpu_hours", "quantity": "1.5", "service": "web"},
}


def raw(data: dict[str, Any] | None = None, drop: tuple[str, ...] = (), **over: Any) -> bytes:
    body = json.loads(json.dumps(BASE))
    body["data"].update(data or {})
    body.update(over)
    for name in drop:
        if name.startswith("data."):
            del body["data"][name[5:]]
        else:
            del body[name]
    return json.dumps(body).encode()


def outcome(decoder: Any, value: bytes | None) -> Sample | tuple[str, str]:
    try:
        return decoder(value)  # type: ignore[no-any-return]
    except Rejected as exc:
        return (exc.reason, exc.detail)


def assert_agree(value: bytes | None, decoder: Decoder | None = None) -> Sample | tuple[str, str]:
    fast = outcome((decoder or Decoder()).decode, value)
    exact = outcome(parse, value)
    assert fast == exact
    if isinstance(fast, Sample) and isinstance(exact, Sample):  # same digits and offsets too
        assert fast.quantity.as_tuple() == exact.quantity.as_tuple()
        assert fast.time.utcoffset() == exact.time.utcoffset()
        assert fast.key[3].utcoffset() == exact.key[3].utcoffset()
    return fast


VALID = [
    raw(),
    raw({"quantity": "0"}),
    raw({"quantity": "00012.500000000000"}),
    raw({"quantity": "999999999999.999999999999"}),  # the largest, to the last place
    raw({"quantity": "1.50000000000000"}),  # trailing zeros are not places: through the contract
    raw({"quantity": "0000000000001.5"}),
    raw({"quantity": 7}),  # a JSON number: through the contract
    raw({"quantity": 0.1}),
    raw({"quantity": "1e3"}),
    raw({"quantity": "1E-12"}),
    raw({"quantity": 999999999999}),
    raw({"meter": "storage_gb"}),
    raw({"meter": "computations", "aggregation": "count"}),
    raw({"meter": "tokens", "aggregation": "max"}),
    raw({"meter": "seats", "aggregation": "unique_count", "resource_id": "vm-1"}),
    raw({"resource_id": None, "aggregation": None}),
    raw({"resource_id": ""}),
    raw(time="2013-07-01T13:59:59.999999+03:00"),
    raw(time="2013-07-01T10:15:00Z"),
    raw(time="2013-07-01T10:15:00.5-09:30"),
    raw(datacontenttype="application/json", dataschema="https://example.com/usage"),
    raw(datacontenttype=None, dataschema=None),
]


@pytest.mark.parametrize("value", VALID)
def test_a_valid_event_decodes_to_the_same_sample_as_through_the_contract(value: bytes) -> None:
    assert isinstance(assert_agree(value), Sample)


INVALID = [
    (None, "invalid_json"),
    (b"", "invalid_json"),
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "validation_error"),
    (b'"text"', "validation_error"),
    (raw({"quantity": "-1"}), "negative_quantity"),
    (raw({"quantity": "-0.5"}), "negative_quantity"),
    (raw({"quantity": "NaN"}), "non_finite_quantity"),
    (raw({"quantity": "Infinity"}), "non_finite_quantity"),
    (raw({"quantity": "1" * 40}), "quantity_out_of_range"),
    (raw({"quantity": "1e7000"}), "quantity_out_of_range"),
    (raw({"quantity": "1e20"}), "quantity_out_of_range"),
    (raw({"quantity": "1e400"}), "quantity_out_of_range"),
    (raw({"quantity": "1E+6000"}), "quantity_out_of_range"),
    (raw({"quantity": "1000000000000"}), "quantity_out_of_range"),
    (raw({"quantity": "999999999999.9999999999999"}), "quantity_out_of_range"),
    (raw({"quantity": "12345678901234567890.123456789012"}), "quantity_out_of_range"),
    (raw({"quantity": "0.0000000000001"}), "quantity_out_of_range"),
    (raw({"quantity": 10**12}), "quantity_out_of_range"),
    (raw({"quantity": 1e20}), "quantity_out_of_range"),
    (raw({"quantity": 0.30000000000000004}), "quantity_out_of_range"),
    (raw({"quantity": "1" + "0" * 40 + "E-40"}), "quantity_out_of_range"),
    (raw({"quantity": "0E+7000"}), "quantity_out_of_range"),
    (raw({"quantity": "-1E+6000"}), "negative_quantity"),
    (b'{"specversion": "1.0", "id": "e1", "source": "test", "type": "billing.usage", '
     b'"subject": "acme", "time": "2013-07-01T10:15:00Z", '
     b'"data": {"meter": "cpu_hours", "quantity": 1e400, "service": "web"}}',
     "non_finite_quantity"),  # a JSON number beyond a double's range reads as infinity
    (raw({"quantity": "one"}), "validation_error"),
    (raw({"quantity": True}), "validation_error"),
    (raw(subject=""), "missing_subject"),
    (raw(drop=("subject",)), "missing_subject"),
    (raw({"meter": "tokens", "aggregation": "median"}), "unknown_aggregation"),
    (raw({"meter": "tokens"}), "unknown_aggregation"),
    (raw({"meter": "cpu_hours", "aggregation": "max"}), "aggregation_mismatch"),
    (raw({"meter": "seats", "aggregation": "unique_count"}), "missing_resource_id"),
    (raw({"meter": "seats", "aggregation": "unique_count", "resource_id": ""}),
     "missing_resource_id"),
    (raw({"meter": "Bad Meter"}), "validation_error"),
    (raw({"meter": ""}), "validation_error"),
    (raw({"service": ""}), "validation_error"),
    (raw({"resource_id": "r" * 513}), "validation_error"),
    (raw({"extra": 1}), "validation_error"),
    (raw(drop=("data.quantity",)), "validation_error"),
    (raw(time="2013-07-01T10:00:00"), "validation_error"),
    (raw(time="yesterday"), "validation_error"),
    (raw(time="0001-01-01T00:30:00+01:00"), "invalid_time"),
    (raw(type="other"), "validation_error"),
    (raw(specversion="0.3"), "validation_error"),
    (raw(id=""), "validation_error"),
    (raw(id=5), "validation_error"),
    (raw(source="s" * 513), "validation_error"),
    (raw(datacontenttype="text/plain"), "validation_error"),
    (raw(unknown="x"), "validation_error"),
    (raw(drop=("data",)), "validation_error"),
]


@pytest.mark.parametrize(("value", "reason"), INVALID)
def test_each_invalid_class_is_rejected_with_the_contracts_reason_and_detail(
    value: bytes | None, reason: str
) -> None:
    assert assert_agree(value) == outcome(parse, value)
    result = outcome(decode, value)
    assert isinstance(result, tuple) and result[0] == reason


def test_a_reused_decoder_agrees_on_every_event_including_cached_times() -> None:
    decoder = Decoder()
    for value in [*VALID, *(v for v, _ in INVALID)] * 2:
        assert_agree(value, decoder)
    assert decoder.times, "valid times are cached"


def test_the_fast_path_keeps_the_exact_decimal_text() -> None:
    sample = decode(raw({"quantity": "2.500"}))
    assert sample.quantity == Decimal("2.5") and str(sample.quantity) == "2.500"


def test_a_plain_event_takes_the_fast_path_and_an_odd_one_the_contract(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    through_contract: list[bytes | None] = []

    def spy(value: bytes | None) -> Sample:
        through_contract.append(value)
        return parse(value)

    monkeypatch.setattr("services.usage_collector.wire.parse", spy)
    decoder = Decoder()
    decoder.decode(raw())
    decoder.decode(raw({"meter": "seats", "aggregation": "unique_count", "resource_id": "a"}))
    assert through_contract == []
    decoder.decode(raw({"quantity": 7}))
    assert through_contract == [raw({"quantity": 7})]


ODD_TIMES: list[object] = [
    "1372673700", "1372673700.5", "-1", "2013-07-01", "2013-07-01T10:15", "2013-07-01T10:15Z",
    "2013-07-01 10:15:00+00:00", "2013-07-01T10:15:00.123456789+00:00",
    "2013-07-01T10:15:00+0100", "2013-07-01t10:15:00z", " 2013-07-01T10:15:00Z",
    "2013-07-01T10:15:00+24:00", "9999-12-31T23:59:59-01:00", "now", 1372673700, 1.5, None,
]


@pytest.mark.parametrize("time", ODD_TIMES)
def test_odd_time_texts_and_numbers_are_read_as_the_contract_reads_them(time: object) -> None:
    decoder = Decoder()
    assert_agree(raw(time=time), decoder)
    assert_agree(raw(time=time), decoder)  # again, from the time cache


@settings(max_examples=300, deadline=None)
@given(
    whole=st.text("0123456789", min_size=1, max_size=15),
    places=st.one_of(st.none(), st.text("0123456789", min_size=0, max_size=15)),
    exponent=st.one_of(st.none(), st.integers(-30, 30)),
)
def test_both_paths_take_the_same_decision_on_any_quantity_text(
    whole: str, places: str | None, exponent: int | None
) -> None:
    text = whole + ("" if places is None else f".{places}") + (
        "" if exponent is None else f"e{exponent}"
    )
    result = assert_agree(raw({"quantity": text}))
    value = Decimal(text)
    if isinstance(result, Sample):
        assert value < 10**12
        assert value == value.quantize(Decimal("1E-12")), "no more than 12 places"
    elif value < 10**12 and value == value.quantize(Decimal("1E-12")):
        assert result[0] == "quantity_out_of_range" and len(value.as_tuple().digits) > 34
