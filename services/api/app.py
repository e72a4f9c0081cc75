"""The Billing API application (`create_app`; docs/api.md).

The lifespan opens the process's connections (MongoDB client, a started Kafka broker, the
platform's topics and the API's indexes) into `app.state.context`; the routers come from
`services.api.routes`; errors render as problem documents (`services.api.errors`); the
middleware adds request ids, metrics, the body limit and `Idempotency-Key` handling.
"""

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from services.api import audit, deadletters
from services.api.auth import Authenticator
from services.api.context import ApiContext
from services.api.errors import install_handlers
from services.api.idempotency import Idempotency, ensure_indexes
from services.api.keys import MongoKeyStore
from services.api.middleware import BodyLimit, RequestContext
from services.api.names import SERVICE
from services.api.ops import ASSETS_PATH, docs_assets
from services.api.ops import router as ops_router
from services.api.portal import form_tokens as portal_form_tokens
from services.api.portal import sessions as portal_sessions
from services.api.portal import web as portal_web
from services.api.ratelimit import RateLimits
from services.api.settings import ApiSettings
from services.common.kafka import ensure_topics
from services.common.mongo import database, make_client
from services.common.worker import make_broker
from services.payments import api as payments

log = logging.getLogger(__name__)
ROUTERS = ("admin", "reads", "writes", "ingest", "portal_links", "payments_self",
           "operations", "plans", "subscriptions", "entitlements")
#: The portal's routers (`services.api.portal.<name>`), not in the OpenAPI document.
PORTAL_ROUTERS = ("routes_auth", "routes_tenant", "routes_plan", "routes_admin")
DESCRIPTION = (
    "The billing platform's HTTP API for operators, tenants and usage publishers. "
    "Authenticate with an API key: `Authorization: Bearer <key>`. Errors are RFC 9457 "
    "problem documents. See docs/api.md."
)


def _routers() -> list[APIRouter]:
    found = []
    for name in ROUTERS:
        module = importlib.import_module(f"services.api.routes.{name}")
        found.append(module.router)
    for name in PORTAL_ROUTERS:
        module = importlib.import_module(f"services.api.portal.{name}")
        found.append(module.router)
    return found


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The API as an ASGI app for `settings` (default: from the environment). Connections open
    in its lifespan; `app.state.context` is the `ApiContext` while it runs."""
    cfg = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_client(cfg)
        db = database(client, cfg)
        broker = make_broker(cfg, name=SERVICE)
        dead_letters = deadletters.DeadLetterConsumer(cfg, db)
        connections = AsyncExitStack()
        try:
            payments_deps = await connections.enter_async_context(
                payments.connected(cfg, client))
            await ensure_topics(cfg)
            await ensure_indexes(db, cfg)
            await deadletters.ensure_indexes(db)
            await broker.start()
            if cfg.api_dead_letter_consumer:
                dead_letters.start()
            app.state.context = ctx = ApiContext(cfg, client, db, broker, payments_deps)
            await audit.ensure_indexes(ctx)
            await portal_sessions.ensure_indexes(db)
            await portal_form_tokens.ensure_indexes(db)
            app.state.authenticator = Authenticator(MongoKeyStore(db))
            app.state.rate_limits = RateLimits(cfg.api_rate_limit, cfg.api_ingest_rate_limit)
            yield
        finally:
            await dead_letters.stop()
            await broker.stop()
            await connections.aclose()
            await client.close()

    app = FastAPI(title="Billing API", version="1", description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    install_handlers(app, page=portal_web.error_page, page_prefix=portal_web.PREFIX)
    app.add_exception_handler(
        portal_web.SignInRequired,
        lambda _request, exc: portal_web.sign_in_redirect(exc),
    )
    app.include_router(ops_router)
    app.mount(ASSETS_PATH, docs_assets(), name="docs-assets")
    app.mount(portal_web.STATIC_PATH, StaticFiles(directory=portal_web.STATIC),
              name="portal-static")
    for router in _routers():
        app.include_router(router)
    # added last = outermost: request context, then the body limit, then idempotency
    app.add_middleware(Idempotency)
    app.add_middleware(BodyLimit, max_bytes=cfg.api_max_body_bytes)
    app.add_middleware(RequestContext)
    return app
