"""Who is calling: the principal an API key authenticates (docs/api.md, "Roles")."""

from dataclasses import dataclass
from typing import Final, Literal

Role = Literal["super", "viewer", "tenant", "ingest"]
ROLES: Final[tuple[Role, ...]] = ("super", "viewer", "tenant", "ingest")


@dataclass(frozen=True)
class Principal:
    """An authenticated API key.

    `key_id` is the key's public id (`key_...`, also the first part of the key itself),
    `name` what its creator called it, `role` one of `ROLES`; `tenant_id` is set for (and only
    for) role `tenant`; `source` optionally restricts an `ingest` key to CloudEvents with that
    `source`.
    """

    key_id: str
    name: str
    role: Role
    tenant_id: str | None = None
    source: str | None = None

    @property
    def actor_id(self) -> str:
        """The actor id written into commands and audit records: `key:{key_id}`."""
        return f"key:{self.key_id}"
