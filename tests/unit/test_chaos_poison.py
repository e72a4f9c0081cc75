"""The chaos run's poison check counts only the consumer groups that take a message's type."""

import pytest

from services.common.settings import CommonSettings
from services.demo.chaos import poison_outcomes
from services.devstack.api import Poison

pytestmark = pytest.mark.unit
TOPIC = "billing.tenant.v1"


def letter(service: str, value: bytes) -> dict[str, object]:
    return {"topic": TOPIC, "service": service, "reason": "validation_error",
            "original": value.decode()}


def test_a_message_one_of_two_groups_takes_is_ok_with_that_groups_dead_letter() -> None:
    settings = CommonSettings(topic_prefix="")
    limits = Poison(TOPIC, b"t", b'{"version": 0}', [], "validation_error", readers=1)
    every = Poison(TOPIC, b"t", b'{"config_version": 0}', [], "validation_error")
    dead = [letter("usage_collector", limits.value), letter("notifier", every.value)]
    found = poison_outcomes(settings, [limits, every], dead, {TOPIC: 2})
    assert [m["ok"] for m in found["messages"]] == [True, False]
    assert [m["readers"] for m in found["messages"]] == [1, 2]
    assert found["with_expected_reason"] == 1
