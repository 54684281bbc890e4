"""The base of every connector's settings model: the chain, common fields, provenance, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from carbon_sdk.errors import ConfigurationError

from .locations import env_var, secret_file_name
from .sources import (
    DEFAULT,
    AliasEnvSource,
    ConfigFileSource,
    EnvSource,
    Origin,
    Resolution,
    SecretFileSource,
    current_resolution,
    resolving,
)

REDACTED = "***"


def is_secret(info: FieldInfo) -> bool:
    """Whether a field holds a secret (typed ``SecretStr``, optional or not)."""
    annotation = info.annotation
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


class ServiceSettings(BaseSettings):
    """Settings of one service, resolved through the carbon-sdk chain.

    Subclasses set ``service`` (the section name), ``required`` (fields without which the
    service counts as not configured) and ``env_aliases`` (standard variables per field).
    """

    model_config = SettingsConfigDict(extra="ignore", validate_default=False, frozen=True)

    service: ClassVar[str]
    required: ClassVar[tuple[str, ...]] = ()
    env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}
    endpoint_fields: ClassVar[tuple[str, ...]] = ()

    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")
    request_timeout: float = Field(
        300.0, gt=0, description="Seconds to wait for one request or poll (not a whole query)."
    )
    max_attempts: int = Field(
        3, ge=1, description="Attempts per idempotent request before giving up (with backoff)."
    )
    ca_bundle: Path | None = Field(
        None, description="PEM file of the CA that signed the service's certificate."
    )
    verify: bool = Field(True, description="Verify TLS certificates; false only for testing.")

    _resolution: Resolution = PrivateAttr()

    def __init__(self, **values: Any) -> None:
        resolution = current_resolution().for_service()
        for name in values:
            resolution.record(name, Origin("argument"))
        with resolving(resolution):
            try:
                super().__init__(**values)
            except ValidationError as exc:
                raise invalid_settings(type(self), exc, resolution) from None
        self._resolution = resolution

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The carbon-sdk chain, highest first (see :mod:`carbon_sdk.settings.sources`)."""
        return (
            init_settings,
            EnvSource(settings_cls),
            AliasEnvSource(settings_cls),
            SecretFileSource(settings_cls),
            ConfigFileSource(settings_cls),
        )

    def origin(self, name: str) -> Origin:
        """Where the effective value of field ``name`` came from."""
        return self._resolution.origins.get(name, DEFAULT)

    @property
    def profile(self) -> str | None:
        """The profile (``CARBON_PROFILE``) in force when these settings were loaded."""
        return self._resolution.locations.profile

    @property
    def configured(self) -> bool:
        """Whether every required field has a value."""
        return all(getattr(self, name) is not None for name in self.required)

    def require(self, *names: str) -> None:
        """Raise a ConfigurationError naming how to set each of ``names`` (default:
        ``required``) that has no value."""
        missing = [n for n in names or self.required if getattr(self, n) is None]
        if missing:
            raise missing_settings(type(self), missing, self._resolution)

    def describe(self, *names: str) -> str:
        """``service.field=value (origin)`` for each of ``names``, secrets as ``***``."""
        shown = {name: (value, origin) for name, value, origin in self.rows()}
        return ", ".join(f"{self.service}.{n}={shown[n][0]} ({shown[n][1]})" for n in names)

    def secret(self, name: str) -> str | None:
        """The plain value of secret field ``name``, for handing to the native client only."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else value

    def secret_values(self) -> list[str]:
        """The plain values of every secret field set, for scrubbing text before showing it."""
        return [
            v for n, i in type(self).model_fields.items() if is_secret(i) and (v := self.secret(n))
        ]

    def tls_verify(self) -> bool | str:
        """What to pass as ``verify=`` to requests/httpx/boto3: a CA bundle path, or a bool."""
        if not self.verify:
            return False
        return str(self.ca_bundle) if self.ca_bundle else True

    def rows(self) -> Iterator[tuple[str, str, str]]:
        """``(field, shown value, origin)`` for every field; secrets shown as ``***``."""
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            shown = REDACTED if is_secret(info) and value is not None else _show(value)
            yield name, shown, str(self.origin(name))


def _show(value: object) -> str:
    if value is None:
        return ""
    return str(value)


def how_to_set(cls: type[ServiceSettings], name: str, resolution: Resolution) -> list[str]:
    """Every way to set field ``name``, highest precedence first."""
    service = cls.service
    locations = resolution.locations
    aliases = cls.env_aliases.get(name, ())
    env = env_var(service, name) + (f" (or {', '.join(aliases)})" if aliases else "")
    key = f"{service}.{name}"
    if locations.profile:
        key = f"profiles.{locations.profile}.{key} (or {key})"
    return [
        f"env {env}",
        f"secret file {locations.secrets_dir / secret_file_name(service, name)}",
        f"config key {key} in {locations.user_config} or {locations.system_config}",
        f"carbon_sdk.configure({service}={{{name!r}: ...}})",
    ]


def missing_settings(
    cls: type[ServiceSettings], missing: list[str], resolution: Resolution
) -> ConfigurationError:
    """The error for required fields without a value."""
    profile = resolution.locations.profile
    names = ", ".join(f"{cls.service}.{n}" for n in missing)
    lines = [
        f"{names} not set (profile: {profile or 'none'}). Set {cls.service}.{missing[0]} with:"
    ]
    lines += [f"  - {way}" for way in how_to_set(cls, missing[0], resolution)]
    if len(missing) > 1:
        lines.append("  (the other settings the same way)")
    return ConfigurationError("\n".join(lines))


def invalid_settings(
    cls: type[ServiceSettings], exc: ValidationError, resolution: Resolution
) -> ConfigurationError:
    """The error for values that do not validate: field, message and origin, no traceback."""
    lines = [f"invalid {cls.service} settings:"]
    for error in exc.errors(include_url=False, include_input=False):
        name = str(error["loc"][0]) if error["loc"] else "?"
        origin = resolution.origins.get(name, DEFAULT)
        lines.append(f"  - {cls.service}.{name}: {error['msg']} (from {origin})")
    return ConfigurationError("\n".join(lines))
