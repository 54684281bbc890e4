"""The local platform stack: real servers as supervised local processes (``carbon-sdk dev``).

:class:`Stack` is the supervisor (``up``, ``down``, ``status``, ``env``); each server is a
:class:`Service` in :mod:`carbon_sdk.dev.registry`. The pytest plugin
(:mod:`carbon_sdk.dev.pytest_plugin`) drives the same code for the test suite.
"""

from .service import DevStackError, Service, ServiceContext, ServiceStartError
from .state import default_home
from .supervisor import ServiceStatus, Stack, Started, State

__all__ = [
    "DevStackError",
    "Service",
    "ServiceContext",
    "ServiceStartError",
    "ServiceStatus",
    "Stack",
    "Started",
    "State",
    "default_home",
]
