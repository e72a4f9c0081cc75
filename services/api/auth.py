"""Authentication and authorisation of API requests (docs/api.md, "Authentication").

Route handlers declare who may call them with a dependency:

    who: Annotated[Principal, Depends(allow("super", "viewer", "tenant"))]

and, for a tenant's resources, call `check_tenant(who, tenant_id)` before reading anything.

- no `Authorization: Bearer <key>` header, or a malformed, unknown or revoked key: 401 with
  `WWW-Authenticate: Bearer`;
- a key whose role is not allowed: 403;
- a `tenant` key asking for another tenant's resource: 404, exactly as for a resource that does
  not exist (no existence leak);
- over the key's rate limit: 429 with `Retry-After`.

Verified keys are cached per process for `CACHE_SECONDS`: a revoked key stops working within
that time on every instance.
"""

import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.keys import KeyStore, verify_token
from services.api.principal import Principal, Role
from services.api.problems import Problem, forbidden, not_found
from services.api.ratelimit import RateLimits

CACHE_SECONDS = 5.0
_CACHE_MAX = 10_000
#: The request scope entry holding the authenticated principal (audit, idempotency).
PRINCIPAL_SCOPE_KEY = "billing.principal"
INGEST_PATH = "/v1/usage"
#: Declares the bearer scheme in the OpenAPI document; `authenticate` does the checking.
_BEARER = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")


class Authenticator:
    """Verifies bearer tokens against a `KeyStore`, caching answers (valid or not) for
    `ttl` seconds."""

    def __init__(self, store: KeyStore, ttl: float = CACHE_SECONDS) -> None:
        self._store = store
        self._ttl = ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def principal(self, token: str) -> Principal | None:
        """The principal of `token`, or None when it is not a valid, unrevoked key."""
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await verify_token(self._store, token)
        if len(self._cache) >= _CACHE_MAX:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
        self._cache[token] = (now + self._ttl, found)
        return found


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request) -> Principal:
    """The principal of the request's bearer key (see the module docstring for the errors);
    also counts the request against the key's rate limit and remembers the principal in the
    request scope."""
    token = bearer_token(request)
    if token is None:
        raise _unauthorized("an API key is required: Authorization: Bearer <key>")
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.principal(token)
    if principal is None:
        raise _unauthorized("the API key is malformed, unknown or revoked")
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    limits: RateLimits = request.app.state.rate_limits
    ingest = request.method == "POST" and request.url.path == INGEST_PATH
    await limits.hit(principal, ingest=ingest)
    return principal


def allow(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the authenticated principal if its role is one of `roles`, else
    `Problem(403)`."""
    allowed = frozenset(roles)

    async def dependency(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
    ) -> Principal:
        principal = await authenticate(request)
        if principal.role not in allowed:
            raise forbidden(f"role {principal.role!r} may not {request.method} this resource")
        return principal

    dependency.allowed_roles = allowed  # type: ignore[attr-defined]
    return dependency


def check_tenant(principal: Principal, tenant_id: str, what: str | None = None) -> None:
    """Raise `Problem(404)` when `principal` is a tenant key of another tenant than
    `tenant_id` (`what` names the resource in the detail, default the tenant)."""
    if principal.role == "tenant" and principal.tenant_id != tenant_id:
        raise not_found(what or f"tenant {tenant_id!r}")
