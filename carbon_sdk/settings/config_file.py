"""The YAML config file format shared by the platform's ConfigMap and the user's profiles.

```yaml
postgres:              # base section: applies whatever the profile
  host: db.platform.svc
profiles:
  dev:                 # selected by CARBON_PROFILE=dev, wins over the base sections
    postgres:
      host: 127.0.0.1
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from carbon_sdk._files import write_atomic
from carbon_sdk.errors import ConfigurationError

from .locations import PROFILE_ENV, user_config_path

PROFILES_KEY = "profiles"


@dataclass(frozen=True)
class ConfigFile:
    """One parsed config file (empty when the file does not exist)."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        """Whether anything was read from the file."""
        return bool(self.data)

    @classmethod
    def read(cls, path: Path) -> ConfigFile:
        """Parse ``path``; a missing file is empty, a malformed one a ConfigurationError."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or "not valid YAML"
            raise ConfigurationError(f"config file {path}{where}: {problem}") from None
        if data is None:
            return cls(path)
        if not isinstance(data, dict):
            raise ConfigurationError(f"config file {path}: expected a mapping of service sections")
        return cls(path, data)

    def profiles(self) -> dict[str, Any]:
        """The named profiles in the file."""
        profiles = self.data.get(PROFILES_KEY) or {}
        if not isinstance(profiles, dict):
            raise ConfigurationError(f"config file {self.path}: '{PROFILES_KEY}' must be a mapping")
        return profiles

    def section(self, service: str, profile: str | None) -> tuple[str, dict[str, Any]]:
        """The key prefix and the mapping for ``service``, in ``profile`` or in the base."""
        if profile is None:
            prefix, container = service, self.data
        else:
            prefix = f"{PROFILES_KEY}.{profile}.{service}"
            container = self.profiles().get(profile) or {}
        section = container.get(service) or {}
        if not isinstance(section, dict):
            raise ConfigurationError(f"config file {self.path}: '{prefix}' must be a mapping")
        return prefix, section


def check_profile_exists(profile: str, files: list[ConfigFile]) -> None:
    """Raise a ConfigurationError naming the files searched when no file defines ``profile``."""
    if any(profile in f.profiles() for f in files):
        return
    known = sorted({name for f in files for name in f.profiles()})
    searched = ", ".join(str(f.path) for f in files)
    raise ConfigurationError(
        f"{PROFILE_ENV}={profile!r} names a profile that is in none of: {searched}. "
        f"Known profiles: {', '.join(known) or 'none'}."
    )


def write_profile(name: str, values: dict[str, dict[str, Any]], path: Path | None = None) -> Path:
    """Merge profile ``name`` into the user config file (mode 0600) and return its path.

    ``values`` maps service to settings, e.g. ``{"postgres": {"host": "127.0.0.1"}}``. Other
    profiles and base sections in the file are kept; the named profile is replaced whole.
    """
    target = path or user_config_path()
    current = ConfigFile.read(target).data
    profiles = dict(current.get(PROFILES_KEY) or {})
    profiles[name] = values
    current[PROFILES_KEY] = profiles
    write_atomic(target, yaml.safe_dump(current, sort_keys=False))
    return target
