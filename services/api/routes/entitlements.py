"""The entitlement check: may a tenant use more of a meter now (docs/limits.md).

`GET /v1/tenants/{tenant_id}/entitlements/{meter}` answers from the usage collector's
counters (`services.usage_collector.api.entitlement`): two `_id` reads for a limited meter,
so a platform service can call it before starting each computation. Roles: `super`,
`viewer`, and a `tenant` key for its own tenant (another tenant's answers 404, as for
anything of another tenant).
"""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from contracts.base import utc_now
from services.api.auth import allow, check_tenant
from services.api.context import Ctx
from services.api.models_reads import decimal_text
from services.api.principal import Principal
from services.usage_collector import api as usage

router = APIRouter(tags=["reads"])

Reader = Annotated[Principal, Depends(allow("super", "viewer", "tenant"))]
#: A meter key as usage events name it (`contracts.usage.UsageData.meter`); anything else
#: is answered 422.
MeterKey = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[a-z][a-z0-9_.-]*$",
                               description="the meter key, e.g. `computations`")]


class EntitlementView(BaseModel):
    """A tenant's standing against its plan's limit of one meter in the current billing
    period. Quantities are decimal strings in the meter's unit. Without a limits window
    (no subscription, or it has ended) the tenant is not limited: `limit`, `used`,
    `remaining` and the period are null and `allowed` is true."""

    tenant_id: str
    meter: str
    limit: str | None = Field(description="the period's limit; null: the meter has none")
    used: str | None = Field(description="the period's usage counted so far")
    remaining: str | None = Field(description="max(limit - used, 0); null without a limit")
    allowed: bool = Field(description="false only when a hard limit is reached (used >= limit)")
    hard: bool
    period_start: datetime | None
    period_end: datetime | None
    as_of: datetime = Field(description="when `used` was last brought up to date")


def _text(value: object) -> str | None:
    return None if value is None else decimal_text(value)


@router.get("/v1/tenants/{tenant_id}/entitlements/{meter}", summary="Entitlement to a meter")
async def get_entitlement(
    ctx: Ctx, who: Reader, tenant_id: str, meter: MeterKey
) -> EntitlementView:
    """The tenant's limit, usage and whether more usage of `meter` is allowed now."""
    check_tenant(who, tenant_id)
    now = utc_now()
    found = await usage.entitlement(ctx.db, tenant_id, meter, now)
    if found is None:
        return EntitlementView(tenant_id=tenant_id, meter=meter, limit=None, used=None,
                               remaining=None, allowed=True, hard=False, period_start=None,
                               period_end=None, as_of=now)
    return EntitlementView(
        tenant_id=tenant_id, meter=meter, limit=_text(found.limit), used=_text(found.used),
        remaining=_text(found.remaining), allowed=found.allowed, hard=found.hard,
        period_start=found.period_start, period_end=found.period_end, as_of=found.as_of)
