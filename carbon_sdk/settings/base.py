"""The base of every connector's settings model: the chain, common fields, provenance, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field, PrivateAttr, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from carbon_sdk._redact import REDACTED
from carbon_sdk.errors import ConfigurationError

from .locations import env_var, secret_file_name
from .sources import DEFAULT, Origin, Resolution, chain


def is_secret(info: FieldInfo) -> bool:
    """Whether a field holds a secret (typed ``SecretStr``, optional or not)."""
    annotation = info.annotation
    return annotation is SecretStr or SecretStr in getattr(annotation, "__args__", ())


class ServiceSettings(BaseSettings):
    """Settings of one service, resolved through the carbon-sdk chain.

    Subclasses set ``service`` (the section name), ``required`` (fields without which the
    service counts as not configured), ``env_aliases`` (standard variables per field) and
    ``endpoint_fields`` (what says where the service is), and define :attr:`endpoint`.

    Connectors get their settings with :meth:`load`; constructing a subclass directly resolves
    the chain afresh (environment, secret files, config files) under the given arguments.
    """

    model_config = SettingsConfigDict(extra="forbid", validate_default=False, frozen=True)

    service: ClassVar[str]
    required: ClassVar[tuple[str, ...]] = ()
    env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}
    endpoint_fields: ClassVar[tuple[str, ...]] = ()

    connect_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Seconds to establish a connection, including the first byte of the server's "
        "answer to its first request (see 'What bounds a call' in docs/configuration.md).",
    )
    request_timeout: float = Field(
        300.0,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="Seconds for each later wait on a connection that has answered (one request "
        "or poll, not a whole query).",
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Attempts per request (with backoff); all attempts share one deadline: "
        "connect_timeout until the service has answered, then connect_timeout + request_timeout.",
    )
    ca_bundle: Path | None = Field(
        None, description="PEM file of the CA that signed the service's certificate."
    )
    verify: bool = Field(True, description="Verify TLS certificates; false only for testing.")

    _resolution: Resolution = PrivateAttr()

    def __init__(self, _resolution: Resolution | None = None, **values: Any) -> None:
        resolution = (_resolution or Resolution.start()).for_service()
        sources = chain(type(self), resolution, values)
        try:
            super().__init__(_build_sources=(sources, {}))
        except ValidationError as exc:
            raise invalid_settings(type(self), exc, resolution) from None
        self._resolution = resolution

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """This service's settings from the process-wide configuration (cached per class),
        with ``overrides`` as explicit arguments on top (not cached)."""
        from .carbon import get_settings

        return get_settings().service(cls, **overrides)

    def origin(self, name: str) -> Origin:
        """Where the effective value of field ``name`` came from."""
        return self._resolution.origins.get(name, DEFAULT)

    @property
    def profile(self) -> str | None:
        """The profile (``CARBON_PROFILE``) in force when these settings were loaded."""
        return self._resolution.locations.profile

    @property
    def endpoint(self) -> str:
        """Where the service is, without credentials (``host:port`` or a URL)."""
        return ":".join(str(getattr(self, name)) for name in self.endpoint_fields)

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

    def debug_string(self) -> str:
        """One line for logs: the endpoint and every value not left at its default, with its
        origin (secrets as ``***``), e.g. ``postgres at h:5432/db: host=h (env PGHOST), ...``."""
        shown = [
            f"{name}={value} ({origin})"
            for name, value, origin in self.rows()
            if origin != str(DEFAULT)
        ]
        return f"{self.service} at {self.endpoint}: {', '.join(shown) or 'defaults only'}"

    def _repr_html_(self) -> str:
        from carbon_sdk._render import service_settings_html

        return service_settings_html(self)

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
    for name in missing:
        for origin in resolution.empty.get(name, []):
            lines.append(f"  ({origin} is set but empty, which counts as not set)")
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
