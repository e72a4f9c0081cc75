"""Stripe's API error responses: HTTP status plus the `{"error": {...}}` member, with `type`,
`message` and, where Stripe gives them, `code`, `param`, `decline_code`.
Source: https://docs.stripe.com/api/errors"""

from typing import Any

Body = dict[str, Any]


class ApiError(Exception):
    """An API error: HTTP `status` and Stripe's `{"error": {...}}` member."""

    def __init__(self, status: int, error: Body) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """HTTP 400 `invalid_request_error`."""
    err: Body = {"type": "invalid_request_error", "message": message}
    if param:
        err["param"] = param
    if code:
        err["code"] = code
    return ApiError(400, err)


def missing(kind: str, oid: str) -> ApiError:
    """HTTP 404 `resource_missing`."""
    return ApiError(404, {"type": "invalid_request_error", "code": "resource_missing",
                          "message": f"No such {kind}: '{oid}'", "param": "id"})
