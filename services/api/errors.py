"""How errors become RFC 9457 problem documents (`application/problem+json`; docs/api.md,
"Errors").

- `Problem` raised anywhere: its own status, title, detail and headers;
- request validation: 422 with `errors: [{loc, msg, type}]`;
- unknown route 404, wrong method 405 (with `Allow`);
- MongoDB or Kafka not answering (`DependencyUnavailable`, PyMongo's connection errors,
  `KafkaError`): 503 with `Retry-After`;
- anything else: 500, logged with its traceback, which never reaches the client.
"""

import logging
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, ServerSelectionTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.api.problems import PROBLEM_JSON, Problem
from services.api.scope import request_id_of
from services.common.errors import DependencyUnavailable

log = logging.getLogger(__name__)
UNAVAILABLE = (DependencyUnavailable, ConnectionFailure, ServerSelectionTimeoutError, KafkaError)
RETRY_AFTER_UNAVAILABLE = "5"


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    """The problem document as a response with the problem's headers."""
    return JSONResponse(problem.body(instance), status_code=problem.status,
                        headers=problem.headers, media_type=PROBLEM_JSON)


def problem_for(exc: BaseException, request_id: str = "") -> Problem:
    """The problem an exception becomes (`Problem` itself, 503 for an unavailable dependency,
    else 500 after logging the traceback with the request id)."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, UNAVAILABLE):
        log.warning("a dependency did not answer: %r", exc, extra={"request_id": request_id})
        return Problem(503, "Service Unavailable", "a database or the broker did not answer; "
                       "retry later", headers={"Retry-After": RETRY_AFTER_UNAVAILABLE})
    log.error("unexpected error", exc_info=exc, extra={"request_id": request_id})
    return Problem(500, "Internal Server Error", "an unexpected error occurred")


def _errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in exc.errors()]


#: Renders a problem as an HTML page (the portal's error page).
PageRenderer = Callable[[Request, Problem], Response]


def install_handlers(app: FastAPI, page: PageRenderer | None = None,
                     page_prefix: str = "/portal") -> None:
    """Register the exception handlers above on `app` (the 500 fallback for exceptions raised
    outside any handler lives in the request-id middleware, which sees them all). Requests
    under `page_prefix` get `page(request, problem)` (HTML) instead of a problem document."""

    def respond(problem: Problem, request: Request) -> Response:
        path = request.url.path
        if page is not None and (path == page_prefix or path.startswith(page_prefix + "/")):
            return page(request, problem)
        return problem_response(problem, path)

    async def on_problem(request: Request, exc: Exception) -> Response:
        return respond(problem_for(exc, request_id_of(request.scope)), request)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problem = Problem(422, "Unprocessable Content", "the request is not valid",
                          errors=_errors(exc))
        return respond(problem, request)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        titles = {404: "Not Found", 405: "Method Not Allowed"}
        title = titles.get(exc.status_code, "HTTP Error")
        detail = str(exc.detail) if exc.detail and exc.detail != title else None
        if exc.status_code == 404 and detail is None:
            detail = f"no resource at {request.url.path}"
        problem = Problem(exc.status_code, title, detail, headers=dict(exc.headers or {}))
        return respond(problem, request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    for cls in UNAVAILABLE:
        app.add_exception_handler(cls, on_problem)
