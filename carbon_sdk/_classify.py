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
from typing import TYPE_CHECKING

from carbon_sdk.errors import CarbonError, TLSError
from carbon_sdk.settings.locations import env_var

if TYPE_CHECKING:
    from carbon_sdk.settings import ServiceSettings


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


_UNTRUSTED = (
    "certificate verify failed",
    "unable to get local issuer certificate",
    "self-signed certificate",
    "self signed certificate",
)
# failed verifications that another CA bundle would not fix
_NOT_TRUST = ("hostname mismatch", "does not match host name", "doesn't match", "expired")


def untrusted_certificate(settings: ServiceSettings, text: str) -> str | None:
    """When ``text`` (a client's TLS error) says the server's certificate chain could not be
    verified: the fix, naming the CA bundle setting, its environment variable and the value in
    use; else None (a host name mismatch or an expired certificate is not a trust problem)."""
    lowered = text.lower()
    if not any(f in lowered for f in _UNTRUSTED) or any(f in lowered for f in _NOT_TRUST):
        return None
    service = settings.service
    trusted = (
        settings.describe("ca_bundle") if settings.ca_bundle else "the system's CA certificates"
    )
    return (
        f"the server's certificate is not trusted by {trusted}: set {service}.ca_bundle"
        f" (env {env_var(service, 'ca_bundle')}) to the PEM file of the CA that signed it"
    )


def fix_for(rule: Rule, settings: ServiceSettings, text: str) -> str:
    """The fix to suggest for a client error (``text``) that matched ``rule``: for a
    :class:`~carbon_sdk.errors.TLSError` whose text says the certificate is not trusted, the CA
    bundle setting (:func:`untrusted_certificate`); else the rule's own fix."""
    if issubclass(rule.error, TLSError):
        return untrusted_certificate(settings, text) or rule.fix
    return rule.fix
