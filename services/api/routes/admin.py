"""Administration endpoints: `GET /v1/audit` (docs/api.md, "Audit")."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from services.api.auth import allow
from services.api.principal import Principal

router = APIRouter(tags=["admin"])


@router.get("/v1/audit")
async def audit(who: Annotated[Principal, Depends(allow("super"))]) -> dict[str, Any]:
    """The audit trail (super)."""
    return {"data": [], "next_cursor": None}
