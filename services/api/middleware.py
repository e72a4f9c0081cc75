"""ASGI middleware every request passes, outermost first (docs/api.md):

- `RequestContext`: the request id (`X-Request-Id` from the client when it is 1-128 visible
  ASCII characters, else a new UUID4), echoed in the response and logged; the request metrics
  `billing_api_requests_total{method,route,status}` and `billing_api_request_seconds{route}`
  (by route template, so ids do not explode the label set); and the last resort for exceptions
  no handler caught (a problem document, 500 or 503).
- `BodyLimit`: a request body over `max_bytes` gets 413, whether announced by
  `Content-Length` or counted while a chunked body streams in. The accepted body is buffered
  and handed on, so later layers (idempotency) can read it too.
"""

import logging
import re
import time
import uuid

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import problem_for, problem_response
from services.api.problems import Problem
from services.api.scope import BODY_SCOPE_KEY, REQUEST_ID_SCOPE_KEY

log = logging.getLogger("services.api.requests")
REQUEST_ID_HEADER = "x-request-id"
#: Probes and scrapes: their access log lines are DEBUG, not INFO.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
_VALID_ID = re.compile(r"^[\x21-\x7e]{1,128}$")

REQUESTS = Counter("billing_api_requests_total", "API requests answered",
                   ["method", "route", "status"])
LATENCY = Histogram("billing_api_request_seconds", "API request duration", ["route"])


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestContext:
    """Request id, metrics, access log and the last-resort error answer (see module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        request_id = given if _VALID_ID.match(given) else str(uuid.uuid4())
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        status = {"code": 500, "started": False}
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != REQUEST_ID_HEADER.encode()]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if status["started"]:
                log.error("request %s failed after its response started", request_id,
                          exc_info=exc)
            else:
                await problem_response(problem_for(exc, request_id), scope.get("path"))(
                    scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            REQUESTS.labels(scope["method"], route, str(status["code"])).inc()
            LATENCY.labels(route).observe(elapsed)
            log.log(logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
                    "%s %s -> %s in %.1f ms", scope["method"], scope.get("path"),
                    status["code"], elapsed * 1000,
                    extra={"request_id": request_id, "route": route})


class BodyLimit:
    """413 for request bodies over `max_bytes` (see module); buffers the accepted body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = Problem(413, "Content Too Large",
                            f"the request body is larger than {self.max_bytes} bytes")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await problem_response(too_large, scope.get("path"))(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await problem_response(too_large, scope.get("path"))(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        scope[BODY_SCOPE_KEY] = body
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

