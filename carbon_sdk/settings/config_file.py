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

import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from carbon_sdk._files import locked, write_atomic
from carbon_sdk._suggest import did_you_mean
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
        """Parse ``path``; a missing file is empty, a malformed one a ConfigurationError that
        gives the position and the key, never the text of a value (it may be a secret)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except UnicodeDecodeError as exc:
            raise ConfigurationError(
                f"config file {path} is not UTF-8 text (byte {exc.start + 1})"
            ) from None
        except OSError as exc:
            raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"config file {path}{_describe(exc, text)}") from None
        if data is None:
            return cls(path)
        if not isinstance(data, dict):
            raise ConfigurationError(f"config file {path}: expected a mapping of service sections")
        return cls(path, data)

    def check_sections(self, services: Iterable[str]) -> None:
        """Raise a ConfigurationError for a section (base or in a profile) that names no
        service, e.g. a typo like ``postgress:``."""
        known = [*services]
        containers = [("", self.data)]
        containers += [(f"{PROFILES_KEY}.{n}.", p or {}) for n, p in self.profiles().items()]
        for prefix, container in containers:
            if not isinstance(container, dict):
                raise ConfigurationError(
                    f"config file {self.path}: '{prefix[:-1]}' must be a mapping"
                )
            for key in container:
                if key not in known and not (prefix == "" and key == PROFILES_KEY):
                    raise ConfigurationError(
                        f"config file {self.path}: unknown section '{prefix}{key}'"
                        f"{did_you_mean(str(key), known)}; known services: {', '.join(known)}"
                    )

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


_KEY = re.compile(r"^(?P<indent>\s*)(?:-\s+)?(?P<key>[\w.-]+)\s*:")


def _describe(exc: yaml.YAMLError, text: str) -> str:
    """``:line:column: <kind of problem> (key path)``, without quoting the document."""
    mark = getattr(exc, "problem_mark", None)
    problem = str(getattr(exc, "problem", None) or "not valid YAML")
    kind = re.sub(r"(['\"]).*?\1", "...", problem)  # the offending text may be a secret
    if mark is None:
        return f": {kind}"
    return f":{mark.line + 1}:{mark.column + 1}: {kind}{_key_path(text, mark.line)}"


def _key_path(text: str, line: int) -> str:
    """`` (at key a.b.c)`` for the mapping keys enclosing ``line``, from indentation."""
    path: list[tuple[int, str]] = []
    for raw in text.splitlines()[: line + 1]:
        match = _KEY.match(raw)
        if not match:
            continue
        indent = len(match["indent"])
        path = [(i, k) for i, k in path if i < indent] + [(indent, match["key"])]
    return f" (at key {'.'.join(k for _, k in path)})" if path else ""


def check_profile_exists(profile: str, files: list[ConfigFile]) -> None:
    """Raise a ConfigurationError naming the files searched when no file defines ``profile``."""
    if any(profile in f.profiles() for f in files):
        return
    known = sorted({name for f in files for name in f.profiles()})
    searched = ", ".join(str(f.path) for f in files)
    hint = ""
    if profile.startswith("dev"):
        hint = " `carbon-sdk dev up` writes the local stack's profile."
    raise ConfigurationError(
        f"{PROFILE_ENV}={profile!r} names a profile that is in none of: {searched}. "
        f"Known profiles: {', '.join(known) or 'none'}.{hint}"
    )


def write_profile(name: str, values: dict[str, dict[str, Any]], path: Path | None = None) -> Path:
    """Merge profile ``name`` into the user config file (mode 0600) and return its path.

    ``values`` maps service to settings, e.g. ``{"postgres": {"host": "127.0.0.1"}}``. Other
    profiles and base sections in the file are kept; the named profile is replaced whole.
    """
    target = path or user_config_path()
    with _locked(target):
        current = ConfigFile.read(target).data
        profiles = dict(current.get(PROFILES_KEY) or {})
        profiles[name] = values
        current[PROFILES_KEY] = profiles
        write_atomic(target, yaml.safe_dump(current, sort_keys=False))
    return target


def remove_profile(name: str, path: Path | None = None) -> bool:
    """Delete profile ``name`` from the user config file, keeping everything else; returns
    whether it was there."""
    target = path or user_config_path()
    with _locked(target):
        current = ConfigFile.read(target).data
        profiles = dict(current.get(PROFILES_KEY) or {})
        if name not in profiles:
            return False
        del profiles[name]
        if profiles:
            current[PROFILES_KEY] = profiles
        else:
            current.pop(PROFILES_KEY, None)
        write_atomic(target, yaml.safe_dump(current, sort_keys=False) if current else "")
    return True


def _locked(config: Path) -> AbstractContextManager[None]:
    """Serialize read-modify-write of ``config`` between processes (two stacks' ``dev up``)."""
    return locked(config.with_name(f".{config.name}.lock"))
