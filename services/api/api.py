"""The API service's public module for other services and the demo.

    SERVICE                      "api"
    ApiSettings                  the settings of `billing run api`
    await create_key(db, role=..., name=..., tenant_id=None, source=None) -> token
        (raises `InvalidKeySpec`; the token is shown once, only its hash is stored)
    await create_api_key(settings, role=..., name=..., tenant_id=None, source=None) -> token
        (the same on its own MongoDB connection from `settings`)
"""

from services.api.keys import InvalidKeySpec, create_key
from services.api.names import SERVICE
from services.api.settings import ApiSettings
from services.common.mongo import database, make_client
from services.common.settings import CommonSettings

__all__ = ["SERVICE", "ApiSettings", "InvalidKeySpec", "create_api_key", "create_key"]


async def create_api_key(settings: CommonSettings, *, role: str, name: str,
                         tenant_id: str | None = None, source: str | None = None) -> str:
    """`create_key` in the database of `settings`, on a connection of its own."""
    client = make_client(settings)
    try:
        return await create_key(database(client, settings), role=role, name=name,
                                tenant_id=tenant_id, source=source)
    finally:
        await client.close()
