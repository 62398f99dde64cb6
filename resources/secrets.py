"""The one secret scrubber: every configured secret value is cut out of text before it is
logged, stored or raised.

A server (or a proxy in front of it) may echo the request into its answer: the API key in an
error body, the cookie in a URL it redirects to. Every error type of every service resource
derives from `ScrubbedError`, so its message is scrubbed when it is made, whatever it quotes.
The secrets are the environment variables that hold them (`SECRET_VARIABLES`,
`SECRET_PREFIXES`) and every value a resource `register`s when it uses it (a rotated
`mam_id`, a key given in code rather than through the environment).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

import httpx

SECRET_VARIABLES = (
    "ABS_API_KEY", "MAM_ID", "MAM_PASSWORD", "QBITTORRENT_PASSWORD", "HARDCOVER_TOKEN", "GOOGLE_BOOKS_API_KEY",
    "MAMCRAWLER_NOTIFY_URLS",  # Apprise URLs carry their service's token
)
SECRET_PREFIXES = ("TORZNAB_API_KEY_", "CUSTOM_PROVIDER_AUTH_")
MASK = "***"
# Shorter values would cut ordinary words out of every message; such a "secret" protects nothing.
MIN_LENGTH = 4

_registered: set[str] = set()
_lock = threading.Lock()


def register(*values: str | None) -> None:
    """Remember secret values this process uses, so `scrub` removes them too."""
    with _lock:
        for value in values:
            for form in _forms(value or ""):
                _registered.add(form)


def _forms(value: str) -> set[str]:
    """The value, without a `Bearer ` prefix, and as it looks inside a URL."""
    value = value.strip()
    bare = value.removeprefix("Bearer ").strip()
    forms = {value, bare, quote(bare, safe=""), quote_plus(bare)}
    return {f for f in forms if len(f) >= MIN_LENGTH}


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Every secret known now, longest first (so a secret inside another goes whole)."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name, value in env.items():
        if name in SECRET_VARIABLES or name.startswith(SECRET_PREFIXES):
            found |= _forms(value)
    with _lock:
        found |= _registered
    return sorted(found, key=len, reverse=True)


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    """`text` with every secret (and every `extra` value) replaced by `***`."""
    if not text:
        return text
    values = secret_values()
    for value in extra:
        values += sorted(_forms(value or ""), key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def _sent(response: Any) -> str | None:
    """What the request behind `response` carried (URL, headers, body); None when unknown."""
    try:
        request = response.request
        body = request.content.decode("utf-8", "replace")
    except (AttributeError, RuntimeError, httpx.RequestNotRead):
        return None
    return " ".join([str(request.url), *(f"{k}: {v}" for k, v in request.headers.items()), body])


def scrubbed_text(response: Any) -> str:
    """An httpx response's text without the secrets its request carried: a server can echo
    only what it was sent. Scrubbing every configured secret from data would corrupt it when a
    user's password is a plain word ("audiobooks" is in every ABS path)."""
    sent = _sent(response)
    if sent is None:
        return scrub(response.text)
    text = response.text
    for value in secret_values():
        if value in sent and value in text:
            text = text.replace(value, MASK)
    return text


def scrubbed_json(response: Any) -> Any:
    """An httpx response's JSON, parsed from its scrubbed text (what is kept never holds a
    secret the server echoed); ValueError as `response.json()`. An integer longer than Python
    converts (4,300 digits) stays its text: one absurd field costs its row, not the answer."""
    return json.loads(scrubbed_text(response), parse_int=_int_or_text)


def _int_or_text(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def excerpt(text: object, limit: int = 200, extra: Iterable[str] = ()) -> str:
    """At most `limit` characters of an answer for a message: scrubbed first, so the cut never
    leaves half a secret behind."""
    return scrub(str(text), extra)[:limit]


class ScrubbedError(Exception):
    """Base of every service error: its message never carries a secret."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(scrub(a) if isinstance(a, str) else a for a in args))

    def __str__(self) -> str:  # a secret registered after the error was made goes too
        return scrub(super().__str__())
