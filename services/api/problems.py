"""Errors as RFC 9457 problem details (`application/problem+json`).

A route raises `Problem`; the app's exception handlers turn it, request validation errors and
unexpected exceptions into a problem document `{type, title, status, detail, instance, ...}`.
"""

from typing import Any

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):  # noqa: N818 - named after the RFC's object
    """An HTTP error as a problem document: `status` (HTTP code), `title` (short, the same for
    every occurrence of the problem type), `detail` (this occurrence), `type` (a URI reference,
    `about:blank` by default), `headers` (e.g. `Retry-After`) and any extension members."""

    def __init__(self, status: int, title: str, detail: str | None = None, *,
                 type_: str = "about:blank", headers: dict[str, str] | None = None,
                 **extensions: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """The problem document (JSON object)."""
        doc: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        doc.update(self.extensions)
        return doc


def not_found(what: str) -> Problem:
    """404 for `what` (the same answer whether it does not exist or belongs to someone else)."""
    return Problem(404, "Not Found", f"{what} was not found")


def forbidden(detail: str) -> Problem:
    """403: authenticated, but the role does not allow this."""
    return Problem(403, "Forbidden", detail)
