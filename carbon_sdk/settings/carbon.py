"""All services' settings in one object, loaded lazily and cached for the process."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from carbon_sdk._registry import CONNECTORS, connector

from .base import ServiceSettings
from .locations import Locations
from .sources import ArgumentSource, Resolution

if TYPE_CHECKING:
    from carbon_sdk.datahub import DatahubSettings
    from carbon_sdk.kafka import KafkaSettings
    from carbon_sdk.mlflow import MlflowSettings
    from carbon_sdk.postgres import PostgresSettings
    from carbon_sdk.ray import RaySettings
    from carbon_sdk.s3 import S3Settings
    from carbon_sdk.trino import TrinoSettings


S = TypeVar("S", bound=ServiceSettings)


class CarbonSettings:
    """The settings of every service, each resolved on first access.

    A service whose values do not validate raises its ConfigurationError when accessed, so one
    broken section does not hide the others (``config show`` and ``doctor`` report it per service).
    """

    if TYPE_CHECKING:
        datahub: DatahubSettings
        mlflow: MlflowSettings
        kafka: KafkaSettings
        postgres: PostgresSettings
        ray: RaySettings
        s3: S3Settings
        trino: TrinoSettings

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._resolution = Resolution.start()
        self._overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        self._loaded: dict[type[ServiceSettings], ServiceSettings] = {}
        self._lock = threading.Lock()
        for name in self._overrides:
            connector(name)  # an unknown service name fails now, with the list of known ones

    @property
    def locations(self) -> Locations:
        """The files and profile this load read."""
        return self._resolution.locations

    @property
    def profile(self) -> str | None:
        """The selected profile (``CARBON_PROFILE``)."""
        return self._resolution.locations.profile

    @overload
    def service(self, which: type[S], **overrides: Any) -> S: ...
    @overload
    def service(self, which: str, **overrides: Any) -> ServiceSettings: ...
    def service(self, which: type[S] | str, **overrides: Any) -> S | ServiceSettings:
        """The settings of one service (its settings class or its name), loaded on first
        access and cached per class; per-call ``overrides`` are explicit arguments on top
        (and not cached)."""
        cls = connector(which).settings_class() if isinstance(which, str) else which
        if overrides:
            return self._build(cls, overrides)
        with self._lock:
            if cls not in self._loaded:
                self._loaded[cls] = self._build(cls, {})
            return self._loaded[cls]

    def _build(self, cls: type[S], overrides: Mapping[str, Any]) -> S:
        return cls(self._resolution, **{**self._overrides.get(cls.service, {}), **overrides})

    def __getattr__(self, name: str) -> ServiceSettings:
        if name.startswith("_") or name not in CONNECTORS:
            raise AttributeError(name)
        return self.service(name)

    def __iter__(self) -> Iterator[str]:
        return iter(CONNECTORS)

    def _repr_html_(self) -> str:
        from carbon_sdk._render import settings_html

        return settings_html(self)

    def __repr__(self) -> str:
        return f"CarbonSettings(profile={self.profile!r}, services={list(CONNECTORS)})"


_lock = threading.Lock()
_cached: CarbonSettings | None = None
_overrides: dict[str, dict[str, Any]] = {}


def get_settings() -> CarbonSettings:
    """The process-wide settings, loaded on first use and cached until :func:`reload`."""
    global _cached  # noqa: PLW0603 - the process-wide cache is the point
    with _lock:
        if _cached is None:
            _cached = CarbonSettings(_overrides)
        return _cached


def configure(**overrides: Mapping[str, Any]) -> CarbonSettings:
    """Set explicit values that win over every other source, e.g.
    ``configure(trino={"user": "alice"})``; merged into earlier calls. Returns the new settings.

    An unknown service or setting name is a ConfigurationError naming the closest valid one."""
    global _cached  # noqa: PLW0603
    for name, values in overrides.items():
        cls = connector(name).settings_class()
        ArgumentSource(cls, Resolution(Locations.from_environment()), values)  # checks the keys
    with _lock:
        for name, values in overrides.items():
            _overrides.setdefault(name, {}).update(values)
        _cached = None
    return get_settings()


def reload() -> CarbonSettings:
    """Forget :func:`configure` overrides and re-read environment, secrets and config files."""
    global _cached  # noqa: PLW0603
    with _lock:
        _overrides.clear()
        _cached = None
    return get_settings()
