"""Removing secret values from text before it is shown, logged or raised.

A secret can reach a message in another form than the one configured: percent-encoded inside
a connection URI, ``+``-encoded in a query string, base64-encoded in a Basic ``Authorization``
header, JSON-escaped in a server's error body, or as the ``b'...'`` text of the bytes a server
echoed back (a client quoting a raw response body). :func:`redact` removes every such form.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from urllib.parse import quote, quote_plus

REDACTED = "***"
_sent: set[str] = set()
_sent_lock = threading.Lock()


def remember(*secrets: str | None) -> None:
    """Add credentials the SDK hands to a client (tokens, ``user:password`` pairs) to those
    :func:`redact` always removes, whatever secrets its caller passes."""
    with _sent_lock:
        _sent.update(s for s in secrets if s)


def forms(secret: str) -> Iterator[str]:
    """``secret`` as it may appear in text: raw, URL-encoded, JSON-escaped, base64, and inside
    the ``b'...'`` text of its UTF-8 or Latin-1 bytes (HTTP headers are sent as Latin-1)."""
    yield secret
    yield quote(secret, safe="")
    yield quote(secret)
    yield quote_plus(secret)
    yield json.dumps(secret)[1:-1]
    yield base64.b64encode(secret.encode()).decode().rstrip("=")
    for codec in ("utf-8", "latin-1"):
        with suppress(UnicodeEncodeError):
            yield repr(secret.encode(codec))[2:-1]


def basic_credentials(user: str, password: str) -> str:
    """The ``user:password`` pair a Basic ``Authorization`` header encodes; pass it to
    :func:`redact` with the other secrets so the header's base64 form is removed too."""
    return f"{user}:{password}"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form (see :func:`forms`) of each non-empty secret replaced by
    ``***``, longest first so a secret that contains another is removed whole."""
    with _sent_lock:
        known = [*secrets, *_sent]
    every = {
        form
        for secret in known
        if secret
        for form in forms(secret)
        if form == secret or len(form) >= 4  # a short encoded form would match unrelated text
    }
    for form in sorted(every, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text
