"""Error tables: how a connector maps its client library's exceptions to carbon-sdk errors.

Each connector declares one :class:`ErrorTable`. A table is matched in two passes: first by
exception type (along the class hierarchy) and by the error code the client reports (SQLSTATE,
an S3 error code, an HTTP status), in table order; only when nothing matched that way are the
rules' message fragments tried, again in table order. Exception types are named as
``"module.Attribute"`` and resolved when a client error is classified, so declaring a table
imports no client library.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

from carbon_sdk.errors import CarbonError


@dataclass(frozen=True)
class Rule:
    """One row: what it matches and the carbon-sdk error (with the fix to suggest) it gives.

    Attributes:
        error: the carbon-sdk error class to raise.
        fix: what the user should check, appended to the message (may be empty).
        types: exception classes as ``"module.Attribute"``, e.g. ``"requests.ConnectTimeout"``.
        codes: code prefixes, e.g. SQLSTATE ``"08"`` (a whole class) or ``"28P01"``.
        text: lower-case message fragments, the fallback for errors without type or code.
    """

    error: type[CarbonError]
    fix: str = ""
    types: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    text: tuple[str, ...] = ()


@functools.cache
def _resolve(dotted: str) -> type[BaseException] | None:
    module, _, attribute = dotted.rpartition(".")
    try:
        resolved = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return None
    return resolved if isinstance(resolved, type) else None


class ErrorTable:
    """A connector's rules, matched by type and code first, message text last."""

    def __init__(self, *rules: Rule) -> None:
        self.rules = rules

    def match(self, exc: BaseException, code: str | None = None) -> Rule | None:
        """The first rule matching ``exc`` by type or ``code``, else by text, else None."""
        for rule in self.rules:
            if any((t := _resolve(name)) is not None and isinstance(exc, t) for name in rule.types):
                return rule
            if code and any(code.startswith(prefix) for prefix in rule.codes):
                return rule
        lowered = str(exc).lower()
        for rule in self.rules:
            if any(fragment in lowered for fragment in rule.text):
                return rule
        return None


def headline(text: str, limit: int = 500) -> str:
    """The line of a client error message to show: its first line, and when that line only
    introduces what follows (it ends with ``:``, as Ray's "Initialization failure from
    server:" before the server's traceback does), the last non-empty line too, which names the
    cause. At most ``limit`` characters."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    if first.endswith(":") and len(lines) > 1:
        first = f"{first} {lines[-1]}"
    return first[:limit]
