"""Authentication and authorisation of API requests (docs/api.md, "Authentication").

Route handlers declare who may call them with a dependency:

    who: Annotated[Principal, Depends(allow("super", "viewer", "tenant"))]

and, for a tenant's resources, call `check_tenant(who, tenant_id)` before reading anything.

- no `Authorization: Bearer <key>` header, or an unknown or revoked key: 401 with
  `WWW-Authenticate: Bearer`;
- a key whose role is not allowed: 403;
- a `tenant` key asking for another tenant's resource: 404, exactly as for a resource that does
  not exist (no existence leak);
- over the key's rate limit: 429 with `Retry-After`.
"""

from collections.abc import Awaitable, Callable

from fastapi import Request

from services.api.principal import Principal, Role
from services.api.problems import not_found


async def authenticate(request: Request) -> Principal:
    """The principal of the request's bearer key (see the module docstring for the errors)."""
    raise NotImplementedError


def allow(*roles: Role) -> Callable[[Request], Awaitable[Principal]]:
    """A FastAPI dependency: the authenticated principal if its role is one of `roles`, else
    `Problem(403)`."""
    raise NotImplementedError


def check_tenant(principal: Principal, tenant_id: str, what: str | None = None) -> None:
    """Raise `Problem(404)` when `principal` is a tenant key of another tenant than
    `tenant_id` (`what` names the resource in the detail, default the tenant)."""
    if principal.role == "tenant" and principal.tenant_id != tenant_id:
        raise not_found(what or f"tenant {tenant_id!r}")
