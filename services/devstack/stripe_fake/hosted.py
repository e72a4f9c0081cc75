"""The fake's hosted Checkout page, `GET|POST /checkout/{id}` on the fake's own origin (the
session's `url`), standing in for Stripe's hosted payment page.

An accessible HTML form (labelled Card number, Expiry (MM / YY), CVC, Name on card; a
"Pay <amount>" or "Save card" button; a Cancel link to the session's `cancel_url`). A
submitted Stripe test card number (docs/stripe-fake.md, "Checkout") completes the session
and answers 303 to `success_url` (`{CHECKOUT_SESSION_ID}` replaced by the session id); an
unknown or declined card re-renders the form with Stripe's message and the session stays
open; an expired or completed session's page says so (HTTP 410 for a submission).
"""

import html
import re
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from services.devstack.stripe_fake import checkout
from services.devstack.stripe_fake.errors import ApiError
from services.devstack.stripe_fake.state import Body, FakeStripe

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}
_ZERO_DECIMAL = {"jpy", "krw", "vnd", "clp", "isk", "ugx", "xaf", "xof"}
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;"
          "color:#1a1a1a}label{display:block;margin-top:.75rem;font-weight:600}"
          "input{width:100%;padding:.5rem;font-size:1rem;border:1px solid #555}"
          "button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;background:#0a2540;"
          "color:#fff;border:0}.error{color:#9b1c1c;font-weight:600}"
          ":focus{outline:3px solid #635bff;outline-offset:2px}")


def format_amount(amount: int, currency: str) -> str:
    """`$49.00`, `€12.50`, `1,000 JPY`: minor units as shown to the payer."""
    cur = currency.lower()
    if cur in _ZERO_DECIMAL:
        return f"{amount:,} {cur.upper()}"
    value = f"{amount / 100:,.2f}"
    return f"{_SYMBOLS[cur]}{value}" if cur in _SYMBOLS else f"{value} {cur.upper()}"


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A complete hosted page (the fake's own small stylesheet) around `body`."""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_STYLE}</style></head><body><main>{body}</main></body></html>",
        status_code=status)


def _closed(found: Body, status: int = 200) -> HTMLResponse:
    text = ("This checkout session has expired." if found["status"] == "expired"
            else "This checkout session is complete.")
    return page("Checkout closed", f"<h1>Checkout closed</h1><p role=\"status\">{text}</p>",
                 status)


def _form(found: Body, error: tuple[str, str] | None = None,
          values: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    """The card form; `error` is (field name, Stripe's message) shown as an alert that the
    field's `aria-describedby` points at."""
    values = values or {}
    paying = found["mode"] == "payment"
    title = "Pay" if paying else "Save a card"
    button = (f"Pay {format_amount(found['amount_total'], found['currency'])}" if paying
              else "Save card")
    items = "".join(
        f"<li>{html.escape(i['name'])} × {i['quantity']}: "
        f"{format_amount(i['unit_amount'] * i['quantity'], found['currency'])}</li>"
        for i in found.get("_items", []))
    alert = f'<p id="card-error" class="error" role="alert">{html.escape(error[1])}</p>' \
        if error else ""
    cancel = (f'<p><a href="{html.escape(found["cancel_url"])}">Cancel</a></p>'
              if found.get("cancel_url") else "")

    body = (
        f"<h1>{title}</h1>"
        + (f"<ul>{items}</ul>" if items else "")
        + f'<form method="post" action="/checkout/{html.escape(found["id"])}">{alert}'
        + card_fields(error, values)
        + f'<button type="submit">{html.escape(button)}</button></form>{cancel}'
    )
    return page(title, body, status)


def card_fields(error: tuple[str, str] | None, values: dict[str, str]) -> str:
    """The labelled card inputs (Card number, Expiry (MM / YY), CVC, Name on card); the field
    named in `error` gets `aria-invalid` and points at the `card-error` alert."""

    def field(name: str, label: str, extra: str = "") -> str:
        value = html.escape(values.get(name, ""))
        if error and error[0] == name:
            extra += ' aria-invalid="true" aria-describedby="card-error"'
        return (f'<label for="{name}">{label}</label>'
                f'<input id="{name}" name="{name}" value="{value}" required{extra}>')

    return (field("card_number", "Card number", ' inputmode="numeric" autocomplete="cc-number"')
            + field("expiry", "Expiry (MM / YY)", ' autocomplete="cc-exp" placeholder="MM / YY"')
            + field("cvc", "CVC", ' inputmode="numeric" autocomplete="cc-csc"')
            + field("name", "Name on card", ' autocomplete="cc-name"'))


def invalid_details(values: dict[str, str]) -> tuple[str, str] | None:
    """(field, Stripe's message) for an incomplete expiry or security code, else None."""
    expiry = re.fullmatch(r"\s*(\d{1,2})\s*/\s*(\d{2})\s*", values.get("expiry", ""))
    if expiry is None or not 1 <= int(expiry.group(1)) <= 12:
        return "expiry", "Your card's expiration date is incomplete."
    if not re.fullmatch(r"\d{3,4}", values.get("cvc", "").strip()):
        return "cvc", "Your card's security code is incomplete."
    return None


def hosted_routes(fake: FakeStripe) -> list[Route]:
    """The hosted page's routes for the fake's app."""

    def lookup(request: Request) -> Body | None:
        try:
            found = checkout.session(fake, request.path_params["id"])
        except ApiError:
            return None
        return {**found, "_items": fake.session_items[found["id"]]["line_items"]}

    async def show(request: Request) -> Response:
        found = lookup(request)
        if found is None:
            return page("Not found", "<h1>Checkout session not found</h1>", 404)
        return _form(found) if found["status"] == "open" else _closed(found)

    async def submit(request: Request) -> Response:
        found = lookup(request)
        if found is None:
            return page("Not found", "<h1>Checkout session not found</h1>", 404)
        if found["status"] != "open":
            return _closed(found, 410)
        values = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        problem = invalid_details(values)
        if problem is None:
            try:
                done = checkout.complete(fake, found["id"], values.get("card_number", ""))
            except checkout.CardRefused as exc:
                problem = ("card_number", str(exc))
            else:
                target = str(done["success_url"]).replace("{CHECKOUT_SESSION_ID}", done["id"])
                return RedirectResponse(target, status_code=303)
        values.pop("cvc", None)  # never echoed back
        return _form(found, problem, values, 402)

    return [Route("/checkout/{id}", show, methods=["GET"]),
            Route("/checkout/{id}", submit, methods=["POST"])]
