"""The resolution chain: one pydantic-settings source per layer, each recording provenance.

Highest first: explicit arguments > ``CARBON_<SERVICE>__<FIELD>`` > the variables the native
clients already honour (``PGHOST``, ``AWS_ACCESS_KEY_ID``...) > secret files > config files
(selected profile, then base sections; user file before the platform's) > defaults.

Each source is built for one load with that load's :class:`Resolution` (no global state) and
writes an :class:`Origin` for every field it provides, unless a higher source already did.
pydantic-settings calls the sources highest first and lets earlier ones win, so the recorded
origin is always the origin of the value the model ends up with.

Values are normalised once, here: an empty environment variable or secret file counts as unset
(and is remembered, so the "not set" error can name it); a secret file loses a leading BOM and
one trailing newline; a key that names no field is an error naming the closest valid one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from carbon_sdk._registry import CONNECTORS
from carbon_sdk._suggest import did_you_mean
from carbon_sdk.errors import ConfigurationError

from .config_file import ConfigFile, check_profile_exists
from .locations import (
    ENV_PREFIX,
    NESTED_DELIMITER,
    Locations,
    env_var,
    secret_file_name,
)

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
ARGUMENT = Origin("argument")


@dataclass
class Resolution:
    """The state of one settings load: the files read once, the origins recorded so far, and
    the sources that were present but empty (named by "not set" errors)."""

    locations: Locations
    files: list[ConfigFile] = field(default_factory=list)
    origins: dict[str, Origin] = field(default_factory=dict)
    empty: dict[str, list[Origin]] = field(default_factory=dict)

    @classmethod
    def start(cls, locations: Locations | None = None) -> Resolution:
        """Read the config files named by ``locations`` (default: the environment's)."""
        locations = locations or Locations.from_environment()
        files = [ConfigFile.read(locations.user_config), ConfigFile.read(locations.system_config)]
        if locations.profile is not None:
            check_profile_exists(locations.profile, files)
        for config in files:
            config.check_sections(CONNECTORS)
        return cls(locations, files)

    def for_service(self) -> Resolution:
        """A resolution sharing the files read, with an empty record for one service."""
        return Resolution(self.locations, self.files)

    def record(self, name: str, origin: Origin) -> None:
        """Record ``origin`` for field ``name`` unless a higher source already provided it."""
        self.origins.setdefault(name, origin)

    def record_empty(self, name: str, origin: Origin) -> None:
        """Remember that ``origin`` set field ``name`` to an empty value (treated as unset)."""
        self.empty.setdefault(name, []).append(origin)


def unknown_key(
    service: str, key: str, origin: Origin, fields: Iterable[str]
) -> ConfigurationError:
    """The error for a key that names no setting of ``service``."""
    return ConfigurationError(
        f"unknown setting {service}.{key} (from {origin}){did_you_mean(key, fields)}; "
        f"see `carbon-sdk config schema {service}` for the valid ones"
    )


class CarbonSource(PydanticBaseSettingsSource):
    """A layer of the chain: yields ``(field, raw value, origin)`` for the fields it has."""

    settings_cls: type[ServiceSettings]

    def __init__(self, settings_cls: type[ServiceSettings], resolution: Resolution) -> None:
        super().__init__(settings_cls)
        self.resolution = resolution

    def find(self) -> Iterator[tuple[str, Any, Origin]]:
        """The values this layer provides for ``self.settings_cls``."""
        raise NotImplementedError

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: values are produced by :meth:`find` (required by the base class)."""
        raise NotImplementedError

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, raw, origin in self.find():
            if name in values:  # a layer may offer a field twice (profile, then base): first wins
                continue
            if isinstance(raw, str) and raw == "":
                self.resolution.record_empty(name, origin)
                continue
            info = self.settings_cls.model_fields[name]
            values[name] = _decode(self.settings_cls.service, name, info, raw, origin)
            self.resolution.record(name, origin)
        return values


def _decode(service: str, name: str, info: FieldInfo, raw: Any, origin: Origin) -> Any:
    """A text value for a list or dict field: JSON, or for lists also ``a,b,c``."""
    container = _container(info)
    if not isinstance(raw, str) or container is None:
        return raw
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"invalid {service}.{name} (from {origin}): not valid JSON at character "
                f"{exc.pos + 1}"
            ) from None
    if container is list:
        return [item.strip() for item in text.split(",") if item.strip()]
    raise ConfigurationError(
        f'invalid {service}.{name} (from {origin}): expected a JSON object, e.g. {{"key": "value"}}'
    )


def _container(info: FieldInfo) -> type | None:
    """``list`` or ``dict`` when the field holds one (optional or not), else None."""
    for candidate in (info.annotation, *get_args(info.annotation)):
        kind = get_origin(candidate) or candidate
        if kind in (list, dict):
            return kind  # type: ignore[no-any-return]
    return None


class ArgumentSource(CarbonSource):
    """Explicit values: ``configure()`` and per-call keyword arguments."""

    def __init__(
        self,
        settings_cls: type[ServiceSettings],
        resolution: Resolution,
        values: Mapping[str, Any],
    ) -> None:
        super().__init__(settings_cls, resolution)
        fields = settings_cls.model_fields
        for key in values:
            if key not in fields:
                raise unknown_key(settings_cls.service, key, ARGUMENT, fields)
        self.values = dict(values)

    def find(self) -> Iterator[tuple[str, Any, Origin]]:
        for name, value in self.values.items():
            yield name, value, ARGUMENT


class EnvSource(CarbonSource):
    """``CARBON_<SERVICE>__<FIELD>`` environment variables; an unknown ``<FIELD>`` is an error."""

    def find(self) -> Iterator[tuple[str, Any, Origin]]:
        service = self.settings_cls.service
        fields = self.settings_cls.model_fields
        prefix = f"{ENV_PREFIX}{service.upper()}{NESTED_DELIMITER}"
        for var, value in os.environ.items():
            if not var.startswith(prefix):
                continue
            name = var[len(prefix) :].lower()
            if name not in fields:
                raise unknown_key(service, name, Origin("env", var), fields)
            yield name, value, Origin("env", env_var(service, name))


class AliasEnvSource(CarbonSource):
    """The standard variables the native clients honour (``PGHOST``, ``AWS_ENDPOINT_URL``...)."""

    def find(self) -> Iterator[tuple[str, Any, Origin]]:
        for name, aliases in self.settings_cls.env_aliases.items():
            for var in aliases:
                value = os.environ.get(var)
                if value:
                    yield name, value, Origin("env", var)
                    break
                if value == "":
                    self.resolution.record_empty(name, Origin("env", var))


def read_secret_file(path: os.PathLike[str], setting: str) -> str:
    """A mounted secret's value: UTF-8, without a leading BOM or one trailing newline.

    Errors name ``setting`` (``service.field``) and the file, never its content."""
    where = f"secret file {os.fspath(path)} (for {setting})"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigurationError(f"{where} is not UTF-8 text (byte {exc.start + 1})") from None
    except IsADirectoryError:
        raise ConfigurationError(
            f"{where} is a directory, not a file: is a volume mounted at the wrong path?"
        ) from None
    except OSError as exc:
        raise ConfigurationError(f"cannot read {where}: {exc.strerror}") from None
    text = text.removeprefix("\ufeff")
    for ending in ("\r\n", "\n"):
        if text.endswith(ending):
            return text[: -len(ending)]
    return text


class SecretFileSource(CarbonSource):
    """One file per setting in the secrets directory, as a Kubernetes Secret volume lays out."""

    def find(self) -> Iterator[tuple[str, Any, Origin]]:
        directory = self.resolution.locations.secrets_dir
        if not directory.is_dir():
            return
        service = self.settings_cls.service
        for name in self.settings_cls.model_fields:
            path = directory / secret_file_name(service, name)
            if path.exists():
                yield name, read_secret_file(path, f"{service}.{name}"), Origin("secret", str(path))


class ConfigFileSource(CarbonSource):
    """The config files: the selected profile's sections, then the base sections."""

    def find(self) -> Iterator[tuple[str, Any, Origin]]:
        service = self.settings_cls.service
        fields = self.settings_cls.model_fields
        profile = self.resolution.locations.profile
        layers = [profile, None] if profile is not None else [None]
        for layer in layers:
            for config in self.resolution.files:
                prefix, section = config.section(service, layer)
                for name, value in section.items():
                    origin = Origin("file", f"{config.path}:{prefix}.{name}")
                    if name not in fields:
                        raise unknown_key(service, str(name), origin, fields)
                    if value is not None:
                        yield name, value, origin


def chain(
    settings_cls: type[ServiceSettings], resolution: Resolution, values: Mapping[str, Any]
) -> tuple[PydanticBaseSettingsSource, ...]:
    """Every layer for one load of ``settings_cls``, highest first."""
    return (
        ArgumentSource(settings_cls, resolution, values),
        EnvSource(settings_cls, resolution),
        AliasEnvSource(settings_cls, resolution),
        SecretFileSource(settings_cls, resolution),
        ConfigFileSource(settings_cls, resolution),
    )
