"""The audit trail of API writes (collection `api_audit`; docs/api.md, "Audit").

Every write the API accepts is recorded: principal (key id, name, role), time, request id,
action, target and what changed. `GET /v1/audit` (super) lists these records together with the
commands the invoicer refused (`invoicer_audit`).
"""

from typing import Any

from fastapi import Request

from services.api.context import ApiContext
from services.api.principal import Principal


async def record_write(ctx: ApiContext, request: Request, principal: Principal, action: str,
                       target: str, change: dict[str, Any]) -> str:
    """Record one accepted write; returns the audit record id. `action` is a dotted verb
    (`billing_config.submit`, `credit.grant`, `coupon.create`, `coupon.redeem`,
    `payment.record`), `target` what it acts on (`tenant:acme`, `invoice:INV-2013-0001`,
    `coupon:CODE`), `change` the JSON-able values written (never secrets)."""
    raise NotImplementedError
