"""Importing a connector's client library only when it is used, with the install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from carbon_sdk.errors import MissingExtraError


def import_client(module: str, extra: str) -> ModuleType:
    """Import ``module``; if absent, raise an ImportError naming ``carbon-sdk[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module, extra) from exc
