"""The API service's public module for other services and the demo.

    SERVICE                      "api"
    ApiSettings                  the settings of `billing run api`
    await create_key(db, role=..., name=..., tenant_id=None, source=None) -> token
        (raises `InvalidKeySpec`; the token is shown once, only its hash is stored)
    await create_api_key(settings, role=..., name=..., tenant_id=None, source=None) -> token
        (the same on its own MongoDB connection from `settings`)
    await create_portal_link(settings, tenant_id, created_by=..., base_url=None) -> PortalLink
        (a single-use portal link for a tenant, on its own MongoDB connection)
"""

from services.api.keys import InvalidKeySpec, create_key
from services.api.names import SERVICE
from services.api.portal.sessions import PortalLink, create_link
from services.api.settings import ApiSettings
from services.common.mongo import database, make_client
from services.common.settings import CommonSettings

__all__ = ["SERVICE", "ApiSettings", "InvalidKeySpec", "PortalLink", "create_api_key",
           "create_key", "create_portal_link"]


async def create_api_key(settings: CommonSettings, *, role: str, name: str,
                         tenant_id: str | None = None, source: str | None = None) -> str:
    """`create_key` in the database of `settings`, on a connection of its own."""
    client = make_client(settings)
    try:
        return await create_key(database(client, settings), role=role, name=name,
                                tenant_id=tenant_id, source=source)
    finally:
        await client.close()


async def create_portal_link(settings: ApiSettings, tenant_id: str, *, created_by: str,
                             base_url: str | None = None) -> PortalLink:
    """A single-use portal link opening `tenant_id`'s pages (valid for
    `settings.portal_link_minutes`, 1 h; docs/portal.md, "Signing in"), stored in the database
    of `settings` on a connection of its own. `created_by` is the actor id recorded with it;
    `base_url` the API's public URL (default `settings.portal_base_url()`). The caller checks
    that the tenant exists."""
    client = make_client(settings)
    try:
        return await create_link(database(client, settings), settings, tenant_id, created_by,
                                 base_url=base_url)
    finally:
        await client.close()
