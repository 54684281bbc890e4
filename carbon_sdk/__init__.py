"""carbon-sdk: the Carbon data platform's services, configured, from the first notebook cell.

``%load_ext carbon_sdk`` in a notebook adds the magics (``%%trino``, ``%%postgres``,
``%carbon doctor``; see :mod:`carbon_sdk.ipython`).
``from carbon_sdk import trino`` (or ``postgres``, ``s3``...) imports that connector only; no
service client library is imported by ``import carbon_sdk`` itself (PEP 562 lazy attributes).
The connectors are those of :data:`carbon_sdk._registry.CONNECTORS`; the names spelled out
below for static typing (``TYPE_CHECKING`` imports, ``__all__``) are checked against it by the
contract test.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())  # silent unless configured

if TYPE_CHECKING:
    from carbon_sdk import datahub, kafka, mlflow, postgres, ray, s3, trino
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
    "datahub",
    "doctor",
    "get_settings",
    "kafka",
    "mlflow",
    "postgres",
    "ray",
    "reload",
    "s3",
    "trino",
]


def get_settings() -> CarbonSettings:
    """The resolved settings of every service (cached; see :func:`reload`)."""
    from carbon_sdk.settings.carbon import get_settings as load

    return load()


def doctor(
    *services: str, timeout: float = 5.0, require: tuple[str, ...] = (), deep: bool = False
) -> DoctorReport:
    """Check the services concurrently; the report renders as a table in notebooks.
    ``deep``: also the writing checks (e.g. MLflow's artifact store)."""
    from carbon_sdk.health import run

    return run(services, timeout=timeout, require=require, deep=deep)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext carbon_sdk``: the magics of :mod:`carbon_sdk.ipython` (nothing else is
    imported until one runs)."""
    from carbon_sdk.ipython import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext carbon_sdk``: remove the magics."""
    from carbon_sdk.ipython import unload_ipython_extension as unload

    unload(ipython)


def __getattr__(name: str) -> Any:
    from carbon_sdk._registry import CONNECTORS

    if name in CONNECTORS:
        return CONNECTORS[name].load()
    if name in _ERRORS:
        return getattr(importlib.import_module("carbon_sdk.errors"), name)
    if name in _SETTINGS:
        return getattr(importlib.import_module("carbon_sdk.settings.carbon"), name)
    raise AttributeError(f"module 'carbon_sdk' has no attribute {name!r}")
