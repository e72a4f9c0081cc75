"""Signed commands: HMAC-SHA256 over a command's canonical JSON (pure; no I/O).

Commands that change money (billing configuration) carry a `signature` field. The canonical
form of a command is the UTF-8 encoding of its JSON-mode dump (pydantic `model_dump(mode="json")`)

- without the `signature` field,
- without fields equal to their declared default (so a consumer that knows a newer optional
  field, with its default, verifies what an older producer signed),
- object keys sorted, separators `,` and `:` (no whitespace), non-ASCII characters kept as
  UTF-8 (`ensure_ascii=False`), NaN and infinities refused.

The signature is the lowercase hex HMAC-SHA256 (RFC 2104, FIPS 180-4) of that form with the
shared key; verification recomputes it and compares in constant time (`hmac.compare_digest`).
The invoicer verifies, `billing config apply` signs; an HTTP API signs the same way.
See docs/configuration.md, "Signed commands".
"""

import hashlib
import hmac
import json
from typing import TypeVar

from pydantic import BaseModel

SIGNATURE_FIELD = "signature"
M = TypeVar("M", bound=BaseModel)


def canonical_json(command: BaseModel) -> bytes:
    """The bytes a signature covers (see the module docstring)."""
    data = command.model_dump(mode="json", exclude={SIGNATURE_FIELD}, exclude_defaults=True)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return text.encode("utf-8")


def signature_for(command: BaseModel, key: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of `command`'s canonical form under `key`."""
    return hmac.new(key, canonical_json(command), hashlib.sha256).hexdigest()


def sign(command: M, key: bytes) -> M:
    """A copy of `command` (which must have a `signature` field) carrying its signature."""
    if SIGNATURE_FIELD not in type(command).model_fields:
        raise TypeError(f"{type(command).__name__} has no {SIGNATURE_FIELD!r} field")
    return command.model_copy(update={SIGNATURE_FIELD: signature_for(command, key)})


def verify(command: BaseModel, key: bytes) -> bool:
    """True only when `command` carries a signature equal to the one `key` gives its canonical
    form; unsigned commands and any other value are False (constant-time comparison)."""
    claimed = getattr(command, SIGNATURE_FIELD, None)
    if not isinstance(claimed, str) or not claimed:
        return False
    expected = signature_for(command, key).encode("ascii")
    return hmac.compare_digest(expected, claimed.encode("utf-8", "replace"))
