"""Stripe's request encoding: `application/x-www-form-urlencoded` with bracketed keys
(`metadata[tenant_id]=t1`, `expand[0]=customer`, `invoice_settings[default_payment_method]=pm`),
turned back into nested dicts and lists."""

import re
from typing import Any
from urllib.parse import parse_qsl

_PART = re.compile(r"\[([^\]]*)\]")


def _path(key: str) -> list[str]:
    head = key.split("[", 1)[0]
    return [head, *_PART.findall(key[len(head):])]


def _listify(node: Any) -> Any:
    """Dicts whose keys are all digits (or empty, from `a[]=`) become lists, recursively."""
    if isinstance(node, dict):
        items = {k: _listify(v) for k, v in node.items()}
        if items and all(k.isdigit() or k == "" for k in items):
            return [items[k] for k in sorted(items, key=lambda k: int(k) if k else 0)]
        return items
    return node


def parse_form(body: bytes | str) -> dict[str, Any]:
    """Decode a Stripe form body into nested values (all leaves are strings)."""
    text = body.decode() if isinstance(body, bytes) else body
    root: dict[str, Any] = {}
    for n, (key, value) in enumerate(parse_qsl(text, keep_blank_values=True)):
        parts = _path(key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        last = parts[-1] if parts[-1] != "" else f"{n}"
        node[last] = value
    result: dict[str, Any] = _listify(root)
    return result


def as_bool(value: Any) -> bool:
    """Stripe's booleans arrive as "true"/"false"."""
    return str(value).lower() == "true"
