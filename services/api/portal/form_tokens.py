"""One-time form tokens: every action form of the admin console carries a token made when the
page is rendered (hidden field `form_token`), and the form's action runs at most once per
token (docs/portal.md, "Admin console"). Posting the same form again (a double click, a
reload that posts again, a second request racing the first) does nothing and says so.

    async with once(db, session, "credit", token) as command_id:  # or Resubmitted, StaleForm
        await writes.grant_credit_once(..., event_id=command_id)

A token is claimed by inserting `{_id: sha256(session, form, token)}` into
`portal_form_tokens` (a unique id, so of two racing requests exactly one runs). An action
that raises (a refusal: `Problem`, an invalid value, an error) releases its token, so the
corrected form, or the same one again, can be sent; a finished action keeps it. The block gets
a command id derived from the claim (UUID text): used as the command's event id, a form sent
again after a failure half-way (published, then not audited) is applied once by its consumer.
A TTL index forgets claims `KEEP` after they were made.
"""

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.api.portal.sessions import PortalSession

COLLECTION = "portal_form_tokens"
#: How long a used token is remembered (a page is not reposted days later).
KEEP = timedelta(days=1)
#: The token field of every action form.
FIELD = "form_token"
#: The action forms of a tenant's Billing tab, each with a token of its own.
FORMS = ("config", "payment", "credit", "issue")
_MIN, _MAX = 20, 100


class Resubmitted(Exception):  # noqa: N818 - an outcome, shown to the operator
    """The form was sent before with this token: nothing was done again."""


class StaleForm(Exception):  # noqa: N818 - an outcome, shown to the operator
    """The form has no valid token (missing, malformed): nothing was done."""


def new_tokens() -> dict[str, str]:
    """A fresh token (URL-safe text, 32 random bytes) for each form of `FORMS`."""
    return {form: secrets.token_urlsafe(32) for form in FORMS}


def _claim_id(session: PortalSession, form: str, token: str) -> str:
    return hashlib.sha256(f"{session.session_id}\0{form}\0{token}".encode()).hexdigest()


@asynccontextmanager
async def once(db: AsyncDatabase[dict[str, Any]], session: PortalSession, form: str,
               token: object) -> AsyncIterator[str]:
    """Run the block only for the first use of `token` for `form` in `session`, giving it
    the form's command id (the same for the same session, form and token); raises
    `StaleForm` (no valid token) or `Resubmitted` (used already) before the block; an
    exception from the block releases the token and propagates."""
    if not isinstance(token, str) or not _MIN <= len(token) <= _MAX:
        raise StaleForm(form)
    claim = _claim_id(session, form, token)
    try:
        await db[COLLECTION].insert_one({"_id": claim, "created_at": datetime.now(UTC)})
    except DuplicateKeyError as exc:
        raise Resubmitted(form) from exc
    try:
        yield str(uuid.UUID(claim[:32]))
    except BaseException:
        await db[COLLECTION].delete_one({"_id": claim})
        raise


async def ensure_indexes(db: AsyncDatabase[dict[str, Any]]) -> None:
    """The TTL index forgetting used tokens `KEEP` after their use."""
    await db[COLLECTION].create_index("created_at",
                                      expireAfterSeconds=int(KEEP.total_seconds()))
