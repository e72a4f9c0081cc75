"""Driver errors stop at the adapters: publishing wraps aiokafka's `KafkaError` as
`DependencyUnavailable`, and the FastStream workers' entrypoints and use cases never name a
raw MongoDB or Kafka error (the runtime only sees the platform's typed errors)."""

from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka.errors import KafkaConnectionError
from faststream.kafka import KafkaBroker

from contracts import TOPIC_INVOICE
from services.common.errors import DependencyUnavailable
from services.common.settings import CommonSettings
from services.common.worker import publish_event, publish_raw
from tests.support.stripe_fake import issued_invoice

pytestmark = pytest.mark.unit
SERVICES = Path(__file__).resolve().parents[2] / "services"


class DownBroker:
    async def publish(self, *args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]")


async def test_a_broker_that_does_not_answer_is_dependency_unavailable() -> None:
    with pytest.raises(DependencyUnavailable, match="billing.payment.v1") as info:
        await publish_raw(cast(KafkaBroker, DownBroker()), "billing.payment.v1", b"k", b"{}", [])
    assert isinstance(info.value.__cause__, KafkaConnectionError)
    with pytest.raises(DependencyUnavailable):
        await publish_event(cast(KafkaBroker, DownBroker()), CommonSettings(),
                            issued_invoice(1), TOPIC_INVOICE, "acme")


@pytest.mark.parametrize("module", [
    f"{service}/{name}.py" for service in ("invoicer", "payments", "notifier")
    for name in ("app", "handlers")
])
def test_worker_entrypoints_and_handlers_do_not_catch_raw_driver_errors(module: str) -> None:
    text = (SERVICES / module).read_text()
    for raw in ("PyMongoError", "pymongo.errors", "aiokafka.errors", "KafkaError"):
        assert raw not in text, f"{module} names {raw}: adapters wrap it (DependencyUnavailable)"
