"""The fake's HTTP API: Stripe's `/v1/...` routes the platform uses, plus `/_fake/...` switches.

Stripe API: `POST /v1/customers`, `GET|POST /v1/customers/{id}`, `GET /v1/payment_methods/{id}`,
`POST /v1/payment_methods/{id}/attach`, `POST|GET /v1/payment_intents` (list: `customer`,
`limit`, `starting_after`), `GET /v1/payment_intents/{id}`,
`POST /v1/payment_intents/{id}/confirm`, `POST|GET /v1/refunds`, `GET /v1/refunds/{id}`,
`GET /v1/events`,
`GET /v1/events/{id}`, `POST|GET /v1/webhook_endpoints`, `POST|GET /v1/checkout/sessions`
(list: `payment_intent`, `customer`, `status`), `GET /v1/checkout/sessions/{id}`,
`POST /v1/checkout/sessions/{id}/expire`, `GET /v1/setup_intents/{id}`,
`POST|GET /v1/customers/{id}/tax_ids`, `DELETE /v1/customers/{id}/tax_ids/{tid}`,
`POST /v1/billing_portal/sessions` (hosted page `GET|POST /billing_portal/{id}`:
`billing_portal.py`). Requests need
`Authorization: Bearer sk_...`; POSTs honour `Idempotency-Key`. A Checkout Session's `url` is
the fake's hosted page, `GET|POST /checkout/{id}` (`hosted.py`), on the origin the session was
created through.

What each route does, and how the fake is checked against localstripe: docs/stripe-fake.md.

Fake-only (JSON): `GET|POST /_fake/switches` (see `delivery.Switches`), `POST /_fake/flush`
(release held events), `POST /_fake/reset`, `GET /_fake/deliveries`,
`POST /_fake/events/{id}/send` with `{"url", "age_seconds", "secret"}` (one signed delivery
now, e.g. stale or wrongly signed; answers the endpoint's status).
"""

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.devstack.stripe_fake import billing_portal, checkout
from services.devstack.stripe_fake.delivery import Deliverer
from services.devstack.stripe_fake.forms import parse_form
from services.devstack.stripe_fake.hosted import hosted_routes
from services.devstack.stripe_fake.objects import new_id, now
from services.devstack.stripe_fake.state import ApiError, Body, FakeStripe, missing

log = logging.getLogger(__name__)
Op = Callable[[FakeStripe, dict[str, str], Body, str | None], Body]


def _respond(status: int, body: Body, replayed: bool = False) -> JSONResponse:
    headers = {"Request-Id": new_id("req"), "Stripe-Version": "2025-08-27.basil"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    if status >= 500:
        headers["Stripe-Should-Retry"] = "true"
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(webhook_secret: str) -> Starlette:
    """The fake as an ASGI app; its state is `app.state.stripe` / `app.state.deliverer`."""
    fake = FakeStripe()
    deliverer = Deliverer(webhook_secret, fake.endpoints)
    fake.on_event = deliverer.publish

    def api(op: Op, post: bool = True) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> JSONResponse:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer sk_"):
                return _respond(401, {"error": {
                    "type": "invalid_request_error",
                    "message": "Invalid API Key provided."}})
            fake.requests += 1
            if deliverer.switches.fail_requests > 0:
                deliverer.switches.fail_requests -= 1
                return _respond(500, {"error": {
                    "type": "api_error", "message": "An unknown error occurred (fake)."}})
            params = parse_form(await request.body()) if post else dict(request.query_params)
            key = request.headers.get("idempotency-key") if post else None
            path = dict(request.path_params)
            path["origin"] = str(request.base_url).rstrip("/")  # for hosted pages' URLs
            try:
                if not post:
                    return _respond(200, op(fake, path, params, None))
                status, body, replayed = fake.idempotent(
                    key, request.method, request.url.path, params,
                    lambda: (200, op(fake, path, params, key)),
                )
            except ApiError as exc:
                return _respond(exc.status, {"error": exc.error})
            return _respond(status, body, replayed)

        return endpoint

    async def get_switches(_: Request) -> JSONResponse:
        return JSONResponse(dataclasses.asdict(deliverer.switches))

    async def set_switches(request: Request) -> JSONResponse:
        changes = await request.json()
        for name, value in changes.items():
            if not hasattr(deliverer.switches, name):
                return JSONResponse({"error": f"unknown switch {name}"}, status_code=400)
            setattr(deliverer.switches, name, value)
        return JSONResponse(dataclasses.asdict(deliverer.switches))

    async def flush(_: Request) -> JSONResponse:
        return JSONResponse({"released": deliverer.flush()})

    async def reset(_: Request) -> JSONResponse:
        fake.reset()
        deliverer.reset()
        return JSONResponse({"reset": True})

    async def deliveries(_: Request) -> JSONResponse:
        return JSONResponse([dataclasses.asdict(d) for d in deliverer.log])

    async def send(request: Request) -> JSONResponse:
        options = await request.json()
        evt = next((e for e in fake.events if e["id"] == request.path_params["id"]), None)
        if evt is None:
            return JSONResponse({"error": "no such event"}, status_code=404)
        urls = [options["url"]] if options.get("url") else [
            we["url"] for we in fake.endpoints.values()]
        statuses = [await deliverer.send(evt, url, timestamp=now() - int(
            options.get("age_seconds", 0)), secret=options.get("secret")) for url in urls]
        return JSONResponse({"statuses": statuses})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await deliverer.start()
        try:
            yield
        finally:
            await deliverer.stop()

    def get_event(f: FakeStripe, p: dict[str, str], _q: Body, _k: str | None) -> Body:
        found = next((e for e in f.events if e["id"] == p["id"]), None)
        if found is None:
            raise missing("event", p["id"])
        return found

    def list_endpoints(f: FakeStripe, _p: dict[str, str], _q: Body, _k: str | None) -> Body:
        return {"object": "list", "data": list(f.endpoints.values()), "has_more": False,
                "url": "/v1/webhook_endpoints"}

    routes = [
        Route("/v1/customers", api(lambda f, p, b, k: f.create_customer(b, k)),
              methods=["POST"]),
        Route("/v1/customers/{id}", api(lambda f, p, b, k: f.customer(p["id"]), post=False),
              methods=["GET"]),
        Route("/v1/customers/{id}", api(lambda f, p, b, k: f.update_customer(p["id"], b, k)),
              methods=["POST"]),
        Route("/v1/payment_methods/{id}",
              api(lambda f, p, b, k: f.payment_method(p["id"]), post=False), methods=["GET"]),
        Route("/v1/payment_methods/{id}/attach",
              api(lambda f, p, b, k: f.attach(p["id"], b, k)), methods=["POST"]),
        Route("/v1/payment_intents", api(lambda f, p, b, k: f.create_intent(b, k)),
              methods=["POST"]),
        Route("/v1/payment_intents", api(lambda f, p, b, k: f.list_intents(b), post=False),
              methods=["GET"]),
        Route("/v1/payment_intents/{id}", api(lambda f, p, b, k: f.intent(p["id"]), post=False),
              methods=["GET"]),
        Route("/v1/payment_intents/{id}/confirm",
              api(lambda f, p, b, k: f.confirm(p["id"], b, k)), methods=["POST"]),
        Route("/v1/refunds", api(lambda f, p, b, k: f.create_refund(b, k)), methods=["POST"]),
        Route("/v1/refunds", api(lambda f, p, b, k: f.list_refunds(b), post=False),
              methods=["GET"]),
        Route("/v1/refunds/{id}", api(lambda f, p, b, k: f.refund(p["id"]), post=False),
              methods=["GET"]),
        Route("/v1/events", api(lambda f, p, b, k: f.list_events(b), post=False),
              methods=["GET"]),
        Route("/v1/events/{id}", api(get_event, post=False), methods=["GET"]),
        Route("/v1/webhook_endpoints",
              api(lambda f, p, b, k: f.create_endpoint(b, webhook_secret)), methods=["POST"]),
        Route("/v1/webhook_endpoints", api(list_endpoints, post=False), methods=["GET"]),
        Route("/v1/checkout/sessions", api(lambda f, p, b, k: checkout.create_session(
            f, b, k, p["origin"])), methods=["POST"]),
        Route("/v1/checkout/sessions", api(lambda f, p, b, k: checkout.list_sessions(f, b),
                                           post=False), methods=["GET"]),
        Route("/v1/checkout/sessions/{id}", api(lambda f, p, b, k: checkout.session(
            f, p["id"]), post=False), methods=["GET"]),
        Route("/v1/checkout/sessions/{id}/expire",
              api(lambda f, p, b, k: checkout.expire(f, p["id"], k)), methods=["POST"]),
        Route("/v1/setup_intents/{id}", api(lambda f, p, b, k: checkout.setup_intent(
            f, p["id"]), post=False), methods=["GET"]),
        Route("/v1/customers/{id}/tax_ids", api(lambda f, p, b, k: billing_portal.create_tax_id(
            f, p["id"], b, k)), methods=["POST"]),
        Route("/v1/customers/{id}/tax_ids", api(lambda f, p, b, k: billing_portal.list_tax_ids(
            f, p["id"], b), post=False), methods=["GET"]),
        Route("/v1/customers/{id}/tax_ids/{tid}", api(
            lambda f, p, b, k: billing_portal.delete_tax_id(f, p["id"], p["tid"]),
            post=False), methods=["DELETE"]),
        Route("/v1/billing_portal/sessions", api(
            lambda f, p, b, k: billing_portal.create_session(f, b, p["origin"])),
            methods=["POST"]),
        *hosted_routes(fake),
        *billing_portal.portal_routes(fake),
        Route("/_fake/switches", get_switches, methods=["GET"]),
        Route("/_fake/switches", set_switches, methods=["POST"]),
        Route("/_fake/flush", flush, methods=["POST"]),
        Route("/_fake/reset", reset, methods=["POST"]),
        Route("/_fake/deliveries", deliveries, methods=["GET"]),
        Route("/_fake/events/{id}/send", send, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.stripe = fake
    app.state.deliverer = deliverer
    return app
