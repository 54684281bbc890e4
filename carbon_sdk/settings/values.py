"""Validators for values every connector has in some form: HTTP endpoints and ``host:port``
lists. They raise ``ValueError`` with a short reason, which the settings model turns into a
:class:`~carbon_sdk.errors.ConfigurationError` naming the field and where its value came from,
and never echo the value (it may hold a credential)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit


def http_url(url: str, *, credentials: bool = True) -> str:
    """``url`` without a trailing slash, if it is an ``http(s)://host[:port][/path]`` URL with a
    valid port (and, with ``credentials=False``, no ``user:password@``); else ``ValueError``."""
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("not a URL: it contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # out of range or not a number: ValueError
    except ValueError as exc:
        raise ValueError(f"not a valid URL ({_reason(exc)})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL, expected e.g. https://host:9000")
    if port == 0:
        raise ValueError("port 0 is not a port")
    if not credentials and (parts.username or parts.password):
        raise ValueError("must not contain credentials (set them as their own settings)")
    return url.rstrip("/")


def host_port_list(value: str) -> str:
    """``value`` if it is a comma-separated list of ``host:port`` (``[v6]:port`` for IPv6) with
    ports 1-65535; else ``ValueError`` saying which entry is wrong (by position)."""
    entries = [entry.strip() for entry in value.split(",")]
    for position, entry in enumerate(entries, start=1):
        host, sep, port = entry.rpartition(":")
        bare = host.removeprefix("[").removesuffix("]")
        valid_host = bool(bare) and not any(c.isspace() or c in "/@[]" for c in bare)
        if not (sep and valid_host and port.isascii() and port.isdigit()):
            raise ValueError(f"entry {position} is not host:port")
        if not 0 < int(port) < 65536:
            raise ValueError(f"entry {position}: port out of range 1-65535")
    return ",".join(entries)


def _reason(exc: ValueError) -> str:
    return re.sub(r"'.*'", "...", str(exc))  # urllib quotes the offending part of the URL
