"""The OpenAPI 3.1 document and the interactive docs page, which works offline."""

import importlib
import re

import pytest
from fastapi.routing import APIRoute

from services.api.app import ROUTERS
from tests.support.api import ApiHarness

pytestmark = pytest.mark.integration


def declared_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the API's routers declare."""
    found = set()
    for name in ROUTERS:
        router = importlib.import_module(f"services.api.routes.{name}").router
        for route in router.routes:
            if isinstance(route, APIRoute):
                found |= {(m, route.path) for m in route.methods}
    return found


async def test_the_openapi_document_is_3_1_lists_every_route_and_declares_bearer_auth(
    api: ApiHarness,
) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    listed = {(method.upper(), path) for path, ops in document["paths"].items()
              for method in ops}
    assert declared_routes() <= listed
    schemes = document["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    audit = document["paths"]["/v1/audit"]["get"]
    assert audit["security"] == [{name: []} for name in schemes]


async def test_the_docs_page_loads_only_assets_the_app_serves(api: ApiHarness) -> None:
    page = await api.client.get("/docs")
    assert page.status_code == 200
    assert not re.findall(r"https?://", page.text), "the docs page reaches outside the app"
    assets = re.findall(r"""(?:src|href)=["'](/[^"']+)["']""", page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert (await api.client.get(asset)).status_code == 200, asset
    bundle = next(a for a in assets if a.endswith("swagger-ui-bundle.js"))
    # Swagger UI renders OpenAPI 3.1 only from version 5 (which has the OAS 3.1 plugin)
    assert "isOAS31" in (await api.client.get(bundle)).text
