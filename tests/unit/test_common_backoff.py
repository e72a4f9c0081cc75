"""The back-off helper: capped exponential delays with jitter, retries counted, and a stop
request that ends the retrying without claiming the work was done."""

import asyncio
import random

import pytest

from services.common.backoff import Backoff, Stopped, retry_forever
from services.common.errors import DependencyUnavailable, PermanentError
from services.common.metrics import RETRIES

pytestmark = pytest.mark.unit


def test_delays_double_from_base_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(base=0.5, cap=3.0, jitter=False)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_jittered_delays_lie_between_half_and_all_of_the_capped_value() -> None:
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    for expected in [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]:
        delay = backoff.next_delay()
        assert expected / 2 <= delay <= expected


def test_a_long_outage_never_overflows_the_exponent() -> None:
    backoff = Backoff(base=0.1, cap=30.0, jitter=False, attempts=10_000)
    assert backoff.next_delay() == 30.0


async def test_retry_forever_returns_the_value_after_transient_failures_and_counts_them() -> None:
    calls: list[int] = []

    async def step() -> str:
        calls.append(1)
        if len(calls) <= 3:
            raise DependencyUnavailable("MongoDB")
        return "done"

    metric = RETRIES.labels(service="backoff-test", reason="DependencyUnavailable")
    before = metric._value.get()
    value = await retry_forever(step, stop=asyncio.Event(), service="backoff-test",
                                what="write", base=0.001, cap=0.002)
    assert value == "done" and len(calls) == 4
    assert metric._value.get() - before == 3


async def test_retry_forever_lets_other_errors_through_at_once() -> None:
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        raise PermanentError("bad_input")

    with pytest.raises(PermanentError):
        await retry_forever(step, stop=None, service="backoff-test", what="write", base=0.001)
    assert calls == [1]


async def test_a_stop_request_ends_the_retrying_promptly_with_stopped() -> None:
    stop = asyncio.Event()
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        stop.set()  # SIGTERM arrives during the outage
        raise DependencyUnavailable("broker")

    with pytest.raises(Stopped) as info:
        await asyncio.wait_for(
            retry_forever(step, stop=stop, service="backoff-test", what="write",
                          base=60.0, cap=60.0),
            timeout=5,
        )
    assert calls == [1]
    assert isinstance(info.value.__cause__, DependencyUnavailable)
