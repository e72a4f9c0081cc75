"""The polling helpers return the first truthy result and fail loudly on the deadline."""

import pytest

from tests.support.polling import eventually, wait_until

pytestmark = pytest.mark.unit


async def test_eventually_returns_the_first_truthy_result_of_an_async_check() -> None:
    calls: list[int] = []

    async def check() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually(check, what="three calls", seconds=5, interval=0) == 3


async def test_eventually_names_what_was_awaited_when_the_deadline_passes() -> None:
    with pytest.raises(AssertionError, match="the invoice: not reached"):
        await eventually(lambda: None, what="the invoice", seconds=0, interval=0)


def test_wait_until_returns_the_first_truthy_result_and_fails_on_the_deadline() -> None:
    values = iter([0, "", "ready"])
    assert wait_until(lambda: next(values), what="ready", seconds=5, interval=0) == "ready"
    with pytest.raises(AssertionError, match="never: not reached"):
        wait_until(lambda: False, what="never", seconds=0, interval=0)
