"""The resolution chain: one pydantic-settings source per layer, each recording provenance.

Highest first: explicit arguments > ``CARBON_<SERVICE>__<FIELD>`` > the variables the native
clients already honour (``PGHOST``, ``AWS_ACCESS_KEY_ID``...) > secret files > config files
(selected profile, then base sections; user file before the platform's) > defaults.

Each source knows where its values come from and writes an :class:`Origin` for every field it
provides into the :class:`Resolution` of the load under way, unless a higher source already did.
pydantic-settings calls the sources highest first and lets earlier ones win, so the recorded
origin is always the origin of the value the model ends up with.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from .config_file import ConfigFile, check_profile_exists
from .locations import Locations, env_var, secret_file_name

if TYPE_CHECKING:
    from .base import ServiceSettings

OriginKind = Literal["argument", "env", "secret", "file", "default"]


@dataclass(frozen=True)
class Origin:
    """Where one effective value came from, e.g. ``env CARBON_TRINO__HOST``."""

    kind: OriginKind
    location: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.location}" if self.location else self.kind


DEFAULT = Origin("default")


@dataclass
class Resolution:
    """The state of one settings load: the files read once, and the origins recorded so far."""

    locations: Locations
    files: list[ConfigFile] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)

    @classmethod
    def start(cls, locations: Locations | None = None) -> Resolution:
        """Read the config files named by ``locations`` (default: the environment's)."""
        locations = locations or Locations.from_environment()
        files = [ConfigFile.read(locations.user_config), ConfigFile.read(locations.system_config)]
        if locations.profile is not None:
            check_profile_exists(locations.profile, files)
        return cls(locations, files)

    def for_service(self) -> Resolution:
        """A resolution sharing the files read, with an empty record for one service."""
        return Resolution(self.locations, self.files)

    def record(self, name: str, origin: Origin) -> None:
        """Record ``origin`` for field ``name`` unless a higher source already provided it."""
        self.origins.setdefault(name, origin)


_CURRENT: ContextVar[Resolution | None] = ContextVar("carbon_resolution", default=None)


@contextmanager
def resolving(resolution: Resolution) -> Iterator[Resolution]:
    """Make ``resolution`` the one the sources record into while the block runs."""
    token = _CURRENT.set(resolution)
    try:
        yield resolution
    finally:
        _CURRENT.reset(token)


def current_resolution() -> Resolution:
    """The resolution of the load under way (a fresh one when none is)."""
    resolution = _CURRENT.get()
    return resolution if resolution is not None else Resolution.start()


class CarbonSource(PydanticBaseSettingsSource):
    """A layer of the chain: yields ``(field, raw value, origin)`` for the fields it has."""

    settings_cls: type[ServiceSettings]

    def find(self, resolution: Resolution) -> Iterator[tuple[str, Any, Origin]]:
        """The values this layer provides for ``self.settings_cls``."""
        raise NotImplementedError

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: values are produced by :meth:`find` (required by the base class)."""
        raise NotImplementedError

    def __call__(self) -> dict[str, Any]:
        resolution = current_resolution()
        values: dict[str, Any] = {}
        for name, raw, origin in self.find(resolution):
            if name in values:  # a layer may offer a field twice (profile, then base): first wins
                continue
            info = self.settings_cls.model_fields[name]
            values[name] = self.prepare_field_value(
                name, info, raw, self.field_is_complex(info) and isinstance(raw, str)
            )
            resolution.record(name, origin)
        return values


class EnvSource(CarbonSource):
    """``CARBON_<SERVICE>__<FIELD>`` environment variables."""

    def find(self, resolution: Resolution) -> Iterator[tuple[str, Any, Origin]]:
        service = self.settings_cls.service
        for name in self.settings_cls.model_fields:
            var = env_var(service, name)
            if (value := os.environ.get(var)) is not None:
                yield name, value, Origin("env", var)


class AliasEnvSource(CarbonSource):
    """The standard variables the native clients honour (``PGHOST``, ``AWS_ENDPOINT_URL``...)."""

    def find(self, resolution: Resolution) -> Iterator[tuple[str, Any, Origin]]:
        for name, aliases in self.settings_cls.env_aliases.items():
            for var in aliases:
                if (value := os.environ.get(var)) is not None:
                    yield name, value, Origin("env", var)
                    break


class SecretFileSource(CarbonSource):
    """One file per setting in the secrets directory, as a Kubernetes Secret volume lays out."""

    def find(self, resolution: Resolution) -> Iterator[tuple[str, Any, Origin]]:
        directory = resolution.locations.secrets_dir
        if not directory.is_dir():
            return
        service = self.settings_cls.service
        for name in self.settings_cls.model_fields:
            path = directory / secret_file_name(service, name)
            if path.is_file():
                yield name, path.read_text(encoding="utf-8").strip(), Origin("secret", str(path))


class ConfigFileSource(CarbonSource):
    """The config files: the selected profile's sections, then the base sections."""

    def find(self, resolution: Resolution) -> Iterator[tuple[str, Any, Origin]]:
        service = self.settings_cls.service
        fields = self.settings_cls.model_fields
        profile = resolution.locations.profile
        layers = [profile, None] if profile is not None else [None]
        for layer in layers:
            for config in resolution.files:
                prefix, section = config.section(service, layer)
                for name, value in section.items():
                    if name in fields and value is not None:
                        yield name, value, Origin("file", f"{config.path}:{prefix}.{name}")
