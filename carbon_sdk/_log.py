"""The SDK's log lines: one logger per service, ``carbon_sdk.<service>``, silent by default.

Turn them on with ``logging.getLogger("carbon_sdk").setLevel(logging.DEBUG)`` (and a handler,
e.g. ``logging.basicConfig()``). Lines name the endpoint, the auth mode and where each setting
came from; secret values are never logged (settings render them as ``***``). The retries the
SDK makes (stamina's ``stamina`` logger, see :mod:`carbon_sdk._retry`) are silent by default too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carbon_sdk.settings import ServiceSettings


def logger(service: str) -> logging.Logger:
    """The logger of one service's connector."""
    return logging.getLogger(f"carbon_sdk.{service}")


def client_created(settings: ServiceSettings, client: str) -> None:
    """Log at DEBUG that ``client`` (e.g. ``"psycopg connection"``) is made from ``settings``."""
    log = logger(settings.service)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s: %s", client, settings.debug_string())
