"""The base of every contract: frozen pydantic v2 models that refuse unknown fields."""

import uuid
from datetime import UTC, datetime
from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


def new_event_id() -> str:
    """A fresh, globally unique event id (UUID4 as text)."""
    return str(uuid.uuid4())


def utc_now() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)


class Contract(BaseModel):
    """Frozen, strict-shape model: unknown fields and naive datetimes are validation errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class Event(Contract):
    """Every event carries `event_id` (unique, the consumers' idempotency key), `occurred_at`
    (timezone-aware) and `schema_version` (bumped on a breaking change; the topic's `.vN` with it).
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: str = Field(default_factory=new_event_id, min_length=1)
    occurred_at: AwareDatetime = Field(default_factory=utc_now)
    schema_version: int = 1
