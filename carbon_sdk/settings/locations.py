"""Where configuration lives: the environment variables that point at files and profiles.

The platform mounts a ConfigMap as ``/etc/carbon/config.yaml`` and a Secret as one file per
secret under ``/etc/carbon/secrets``; a laptop keeps named profiles in the user config file.
Each location can be moved with an environment variable, read at every (re)load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from carbon_sdk._files import xdg_home

CONFIG_ENV = "CARBON_CONFIG"
SECRETS_DIR_ENV = "CARBON_SECRETS_DIR"
PROFILE_ENV = "CARBON_PROFILE"
USER_CONFIG_ENV = "CARBON_USER_CONFIG"

DEFAULT_SYSTEM_CONFIG = Path("/etc/carbon/config.yaml")
DEFAULT_SECRETS_DIR = Path("/etc/carbon/secrets")
ENV_PREFIX = "CARBON_"
NESTED_DELIMITER = "__"


def user_config_path() -> Path:
    """The user's config file: ``$CARBON_USER_CONFIG``, else
    ``$XDG_CONFIG_HOME/carbon/config.yaml`` (``~/.config/carbon/config.yaml``)."""
    if explicit := os.environ.get(USER_CONFIG_ENV):
        return Path(explicit)
    return xdg_home("config") / "carbon" / "config.yaml"


@dataclass(frozen=True)
class Locations:
    """The files and profile one load reads, fixed when the load starts."""

    system_config: Path
    user_config: Path
    secrets_dir: Path
    profile: str | None

    @classmethod
    def from_environment(cls) -> Locations:
        """Read the locations from the environment (defaults: the platform's mount points)."""
        return cls(
            system_config=Path(os.environ.get(CONFIG_ENV) or DEFAULT_SYSTEM_CONFIG),
            user_config=user_config_path(),
            secrets_dir=Path(os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR),
            profile=os.environ.get(PROFILE_ENV) or None,
        )


def env_var(service: str, field: str) -> str:
    """The environment variable for one setting: ``CARBON_<SERVICE>__<FIELD>``."""
    return f"{ENV_PREFIX}{service.upper()}{NESTED_DELIMITER}{field.upper()}"


def secret_file_name(service: str, field: str) -> str:
    """The file name of one setting in the secrets directory: ``<service>__<field>``."""
    return f"{service}{NESTED_DELIMITER}{field}"
