"""Importing a connector's client library only when it is used, with the install hint."""

from __future__ import annotations

import importlib
import threading
from types import ModuleType

from carbon_sdk.errors import MissingExtraError

# One import of a client library at a time. Client packages import each other in cycles
# (requests <-> urllib3, botocore, the trino client); two threads importing them at once for
# the first time (doctor checks in threads) can meet Python's import-deadlock avoidance, which
# hands one of them a partially initialized module: "cannot import name ...".
_IMPORTING = threading.RLock()


def import_client(module: str, extra: str) -> ModuleType:
    """Import ``module``; if it (or a library it needs) is absent, raise an ImportError
    naming ``carbon-sdk[extra]``. Other import failures propagate unchanged."""
    with _IMPORTING:
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as exc:
            raise MissingExtraError(module, extra) from exc
