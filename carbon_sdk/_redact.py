"""Removing secret values from text before it is shown, logged or raised."""

from __future__ import annotations

from collections.abc import Iterable

from carbon_sdk.settings import REDACTED


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
