"""carbon-sdk: the Carbon data platform's services, configured, from the first notebook cell.

``from carbon_sdk import trino`` (or ``postgres``, ``s3``...) imports that connector only; no
service client library is imported by ``import carbon_sdk`` itself (PEP 562 lazy attributes).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from carbon_sdk import postgres, s3, trino
    from carbon_sdk.errors import (
        AuthFailed,
        CarbonError,
        ConfigurationError,
        MissingExtraError,
        NotFound,
        QueryError,
        ServiceError,
        TLSError,
        Unreachable,
    )
    from carbon_sdk.health import DoctorReport
    from carbon_sdk.settings.carbon import CarbonSettings, configure, reload

_CONNECTORS = frozenset({"postgres", "s3", "trino"})
_ERRORS = frozenset(
    {
        "AuthFailed",
        "CarbonError",
        "ConfigurationError",
        "MissingExtraError",
        "NotFound",
        "QueryError",
        "ServiceError",
        "TLSError",
        "Unreachable",
    }
)
_SETTINGS = frozenset({"CarbonSettings", "configure", "reload"})

__all__ = [
    "AuthFailed",
    "CarbonError",
    "CarbonSettings",
    "ConfigurationError",
    "MissingExtraError",
    "NotFound",
    "QueryError",
    "ServiceError",
    "TLSError",
    "Unreachable",
    "__version__",
    "configure",
    "doctor",
    "get_settings",
    "postgres",
    "reload",
    "s3",
    "trino",
]


def get_settings() -> CarbonSettings:
    """The resolved settings of every service (cached; see :func:`reload`)."""
    from carbon_sdk.settings.carbon import get_settings as load

    return load()


def doctor(*services: str, timeout: float = 5.0, require: tuple[str, ...] = ()) -> DoctorReport:
    """Check the services concurrently; the report renders as a table in notebooks."""
    from carbon_sdk.health import run

    return run(services, timeout=timeout, require=require)


def __getattr__(name: str) -> Any:
    if name in _CONNECTORS:
        return importlib.import_module(f"carbon_sdk.{name}")
    if name in _ERRORS:
        return getattr(importlib.import_module("carbon_sdk.errors"), name)
    if name in _SETTINGS:
        return getattr(importlib.import_module("carbon_sdk.settings.carbon"), name)
    raise AttributeError(f"module 'carbon_sdk' has no attribute {name!r}")
