"""The API service's public module for other services and the demo.

    SERVICE                      "api"
    ApiSettings                  the settings of `billing run api`
    await create_key(db, role=..., name=..., tenant_id=None, source=None) -> token
        (raises `InvalidKeySpec`; the token is shown once, only its hash is stored)
"""

from services.api.app import SERVICE
from services.api.keys import InvalidKeySpec, create_key
from services.api.settings import ApiSettings

__all__ = ["SERVICE", "ApiSettings", "InvalidKeySpec", "create_key"]
