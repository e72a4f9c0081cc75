"""What every portal page shares: the Jinja2 environment, `render`, the session dependencies
and the CSRF check (docs/portal.md).

Page handlers declare who may see them:

    session: Annotated[PortalSession, Depends(signed_in)]            # any session
    session: Annotated[PortalSession, Depends(operator)]             # super or viewer

then call the API's own route functions with `session.principal`, so the portal applies
exactly the API's access rules (a tenant session asking for another tenant's invoice gets
the same 404 page as for one that does not exist). Every POST handler depends on `csrf`
(the session's token in the form field `csrf_token`, compared in constant time; a missing or
wrong token is a 403 page and nothing is done).

Without a valid session a page redirects (303) to the sign-in page with `?next=`; errors
(`Problem`) on portal paths render `error.html` with the problem's status.
"""

import hmac
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.api.context import ApiContext, context_of
from services.api.portal import formatting, sessions
from services.api.portal.sessions import PortalSession
from services.api.problems import Problem, forbidden

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_PATH = "/portal/static"
PREFIX = "/portal"
#: The request scope entry holding the portal session (set by `signed_in`).
SESSION_SCOPE_KEY = "billing.portal_session"
#: The request scope entry holding the session's one-time message (set by `signed_in`).
FLASH_SCOPE_KEY = "billing.portal_flash"

#: Sent with every portal page: no framing (clickjacking), no MIME sniffing, no page address
#: in the Referer header to other sites, and never cached (pages show money and sessions).
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; object-src 'none'; base-uri 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
formatting.register(env)  # the filters money, date, datetime, quantity


class SignInRequired(Exception):  # noqa: N818 - control flow, turned into a redirect
    """Raised by `signed_in` when the request has no valid session: the app answers with a
    303 redirect to the sign-in page (`next` = the page asked for)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def sign_in_redirect(exc: SignInRequired) -> RedirectResponse:
    """303 to `/portal/login?next=<the page>`."""
    return RedirectResponse(f"{PREFIX}/login?next={quote(exc.next_path, safe='/')}",
                            status_code=303)


def render(request: Request, template: str, status_code: int = 200,
           **values: Any) -> HTMLResponse:
    """`template` rendered with `values` plus `request`, `session` (or None), `csrf_token`
    (the session's, "" without one), `static` (the assets' URL prefix) and `flash` (the
    session's one-time message taken by `take_flash`, else None)."""
    session: PortalSession | None = request.scope.get(SESSION_SCOPE_KEY)
    values.setdefault("flash", request.scope.get(FLASH_SCOPE_KEY))
    page = env.get_template(template).render(
        request=request, session=session, csrf_token=session.csrf if session else "",
        static=STATIC_PATH, **values)
    return HTMLResponse(page, status_code=status_code, headers=PAGE_HEADERS)


def error_page(request: Request, problem: Problem) -> Response:
    """The portal's HTML page for `problem` (its status, title and detail)."""
    return render(request, "error.html", status_code=problem.status, problem=problem)


async def current_session(request: Request) -> PortalSession | None:
    """The request's valid session (signed cookie, unexpired, key not revoked), else None."""
    cookie = request.cookies.get(sessions.COOKIE)
    if not cookie:
        return None
    ctx = context_of(request)
    session_id = sessions.unsign(ctx.settings, cookie)
    if session_id is None:
        return None
    found = await sessions.load_session(ctx.db, session_id)
    if found is not None:
        request.scope[SESSION_SCOPE_KEY] = found
    return found


async def signed_in(request: Request) -> PortalSession:
    """Dependency: the request's session, else `SignInRequired` (a redirect to sign in)."""
    found = await current_session(request)
    if found is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    if request.method == "GET" and found.has_flash:  # a page shows the pending message once
        request.scope[FLASH_SCOPE_KEY] = await sessions.pop_flash(
            context_of(request).db, found.session_id)
    return found


async def flash(request: Request, session: PortalSession, kind: str, text: str) -> None:
    """Show `text` (`kind` `ok` or `error`) once on the session's next page: use it before a
    303 after a form instead of putting a message in the URL."""
    await sessions.set_flash(context_of(request).db, session.session_id, kind, text)


async def operator(session: Annotated[PortalSession, Depends(signed_in)]) -> PortalSession:
    """Dependency: a `super` or `viewer` session, else a 404 page (a tenant never learns which
    admin pages exist)."""
    if not session.is_operator:
        raise Problem(404, "Not Found", "no such page")
    return session


async def superuser(session: Annotated[PortalSession, Depends(operator)]) -> PortalSession:
    """Dependency: a `super` session, else a 403 page."""
    if session.role != "super":
        raise forbidden("only a super operator may change this")
    return session


async def csrf(request: Request,
               session: Annotated[PortalSession, Depends(signed_in)]) -> PortalSession:
    """Dependency of every portal POST: the form's `csrf_token` must equal the session's;
    else `Problem(403)`. Returns the session."""
    form = await request.form()
    sent = form.get("csrf_token")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
        raise forbidden("the form's CSRF token is missing or does not match this session; "
                        "reload the page and try again")
    return session


def context(request: Request) -> ApiContext:
    """The API context (settings, database, broker) of the serving app."""
    return context_of(request)


#: Parameter types for page handlers.
Session = Annotated[PortalSession, Depends(signed_in)]
Operator = Annotated[PortalSession, Depends(operator)]
Super = Annotated[PortalSession, Depends(superuser)]
CsrfChecked = Annotated[PortalSession, Depends(csrf)]
