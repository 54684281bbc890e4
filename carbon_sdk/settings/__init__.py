"""Layered, typed configuration with provenance.

Connectors subclass :class:`ServiceSettings`; :mod:`carbon_sdk.settings.carbon` assembles them
into :class:`~carbon_sdk.settings.carbon.CarbonSettings` and caches the load.
"""

from carbon_sdk._redact import REDACTED

from .base import ServiceSettings, is_secret
from .config_file import remove_profile, write_profile
from .locations import Locations, env_var, secret_file_name, user_config_path
from .sources import Origin

__all__ = [
    "REDACTED",
    "Locations",
    "Origin",
    "ServiceSettings",
    "env_var",
    "is_secret",
    "remove_profile",
    "secret_file_name",
    "user_config_path",
    "write_profile",
]
