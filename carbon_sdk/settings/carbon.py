"""All services' settings in one object, loaded lazily and cached for the process."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from carbon_sdk._registry import CONNECTORS, connector

from .base import ServiceSettings
from .locations import Locations
from .sources import Resolution, resolving

if TYPE_CHECKING:
    from carbon_sdk.postgres import PostgresSettings
    from carbon_sdk.s3 import S3Settings
    from carbon_sdk.trino import TrinoSettings


class CarbonSettings:
    """The settings of every service, each resolved on first access.

    A service whose values do not validate raises its ConfigurationError when accessed, so one
    broken section does not hide the others (``config show`` and ``doctor`` report it per service).
    """

    if TYPE_CHECKING:
        postgres: PostgresSettings
        s3: S3Settings
        trino: TrinoSettings

    def __init__(self, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._resolution = Resolution.start()
        self._overrides = {k: dict(v) for k, v in (overrides or {}).items()}
        self._loaded: dict[str, ServiceSettings] = {}
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

    def service(self, name: str, **overrides: Any) -> ServiceSettings:
        """The settings of service ``name``, loaded on first access; per-call ``overrides``
        are explicit arguments on top (and not cached)."""
        if overrides:
            return self._build(name, overrides)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._build(name, {})
            return self._loaded[name]

    def _build(self, name: str, overrides: Mapping[str, Any]) -> ServiceSettings:
        cls = connector(name).settings_class()
        with resolving(self._resolution):
            return cls(**{**self._overrides.get(name, {}), **overrides})

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
    ``configure(trino={"user": "alice"})``; merged into earlier calls. Returns the new settings."""
    global _cached  # noqa: PLW0603
    for name in overrides:
        connector(name)
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


def service_settings(name: str, **overrides: Any) -> Any:
    """One service's settings, with per-call ``overrides`` as explicit arguments on top."""
    return get_settings().service(name, **overrides)
