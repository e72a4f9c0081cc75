"""Portal sign-in pages: `/portal` (home), `/portal/login` (an API key), `/portal/link/{token}`
(a portal link: GET shows it, its button's POST opens the session) and `/portal/logout`
(docs/portal.md, "Signing in").

The sign-in and link forms have no session yet, so they are protected against login CSRF with
a double submit: a random token in a short-lived SameSite=Strict cookie and in the form must
match.
"""

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from services.api.portal import sessions
from services.api.portal.sessions import PortalSession
from services.api.portal.web import PREFIX, CsrfChecked, context, current_session, render
from services.api.settings import ApiSettings

router = APIRouter(include_in_schema=False)
LOGIN_COOKIE = "billing_portal_login"


def home_of(session: PortalSession) -> str:
    """Where a session lands: operators on the tenant list, a tenant on its invoices."""
    if session.is_operator:
        return f"{PREFIX}/admin/tenants"
    return f"{PREFIX}/tenants/{session.tenant_id}/invoices"


def safe_next(target: str | None) -> str | None:
    """`target` when it is a portal path on this site (no scheme, host or `//`), else None:
    the sign-in never redirects elsewhere."""
    if not target or not target.startswith(f"{PREFIX}/") or target.startswith("//"):
        return None
    if "\\" in target or "://" in target:
        return None
    return target


def set_session_cookie(response: Response, settings: ApiSettings,
                       session: PortalSession) -> None:
    """The signed session cookie: HttpOnly, SameSite=Lax, path `/portal`, expiring with the
    session; `Secure` when `settings.secure_cookies()`."""
    response.set_cookie(
        sessions.COOKIE, sessions.sign(settings, session.session_id),
        max_age=settings.portal_session_minutes * 60, path=sessions.COOKIE_PATH,
        httponly=True, samesite="lax", secure=settings.secure_cookies())


@router.get(PREFIX)
@router.get(f"{PREFIX}/")
async def home(request: Request) -> Response:
    """The signed-in user's home page, else the sign-in page."""
    found = await current_session(request)
    target = home_of(found) if found else f"{PREFIX}/login"
    return RedirectResponse(target, status_code=303)


def _login_page(request: Request, next_path: str | None, error: str | None,
                status_code: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(request, "login.html", status_code=status_code, login_token=token,
                      next_path=next_path or "", error=error)
    settings = context(request).settings
    response.set_cookie(LOGIN_COOKIE, token, max_age=1800, path=f"{PREFIX}/login",
                        httponly=True, samesite="strict", secure=settings.secure_cookies())
    return response


@router.get(f"{PREFIX}/login")
async def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
    """The sign-in form (an API key)."""
    return _login_page(request, safe_next(next), None)


@router.post(f"{PREFIX}/login")
async def login(request: Request, api_key: Annotated[str, Form(max_length=200)] = "",
                login_token: Annotated[str, Form(max_length=100)] = "",
                next: Annotated[str, Form(max_length=2000)] = "") -> Response:  # noqa: A002
    """Sign in with an API key: 303 to `next` (a portal path) or the home page; the form again
    with a message (401) for a wrong key, 403 when the login token does not match."""
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, login_token):
        return _login_page(request, safe_next(next), "The sign-in form expired. Please try "
                           "again.", status_code=403)
    ctx = context(request)
    session = await sessions.sign_in_with_key(ctx.db, ctx.settings, api_key) if api_key else None
    if session is None:
        return _login_page(request, safe_next(next), "That API key is not valid, was revoked "
                           "or may not sign in to the portal.", status_code=401)
    response = RedirectResponse(safe_next(next) or home_of(session), status_code=303)
    set_session_cookie(response, ctx.settings, session)
    response.delete_cookie(LOGIN_COOKIE, path=f"{PREFIX}/login")
    return response


LINK_COOKIE = "billing_portal_link"


@router.get(f"{PREFIX}/link/{{token}}")
async def link_page(request: Request, token: str) -> Response:
    """A portal link: a page naming the tenant with an "Open the billing portal" button (the
    link is used up only by that button's POST); a 404 page when the link is unknown, expired
    or already used."""
    ctx = context(request)
    tenant_id = await sessions.link_tenant(ctx.db, token) if len(token) < 200 else None
    if tenant_id is None:
        return render(request, "link_invalid.html", status_code=404)
    login_token = secrets.token_urlsafe(24)
    response = render(request, "link_open.html", tenant_id=tenant_id, login_token=login_token,
                      action=f"{PREFIX}/link/{token}")
    response.headers["Referrer-Policy"] = "no-referrer"
    response.set_cookie(LINK_COOKIE, login_token, max_age=1800, path=f"{PREFIX}/link",
                        httponly=True, samesite="strict", secure=ctx.settings.secure_cookies())
    return response


@router.post(f"{PREFIX}/link/{{token}}")
async def open_link(request: Request, token: str,
                    login_token: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Open the portal link: a tenant session and 303 to its invoices. The form's token must
    match the cookie the link's page set (403 page otherwise, the link stays unused); a 404
    page when the link is unknown, expired or already used."""
    cookie = request.cookies.get(LINK_COOKIE, "")
    if not cookie or not login_token or not hmac.compare_digest(cookie, login_token):
        return render(request, "link_invalid.html", status_code=403, expired_form=True)
    ctx = context(request)
    session = await sessions.open_link(ctx.db, ctx.settings, token) if len(token) < 200 else None
    if session is None:
        return render(request, "link_invalid.html", status_code=404)
    response = RedirectResponse(home_of(session), status_code=303,
                                headers={"Referrer-Policy": "no-referrer"})
    set_session_cookie(response, ctx.settings, session)
    response.delete_cookie(LINK_COOKIE, path=f"{PREFIX}/link")
    return response


@router.post(f"{PREFIX}/logout")
async def logout(request: Request, session: CsrfChecked) -> Response:
    """Sign out: the session ends and its cookie is removed."""
    await sessions.end_session(context(request).db, session.session_id)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(sessions.COOKIE, path=sessions.COOKIE_PATH)
    return response
