"""The connectors carbon-sdk knows: the one list settings, doctor and the CLI iterate.

Adding a connector is one module (settings model, client factories, helpers, ``check``) and one
line here. Entries name objects as ``module:attribute`` so nothing is imported until used.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carbon_sdk.settings import ServiceSettings


@dataclass(frozen=True)
class Connector:
    """One service: its settings model, its doctor check and the extra with its client."""

    name: str
    title: str
    extra: str

    @property
    def module(self) -> str:
        """The connector's module, e.g. ``carbon_sdk.postgres``."""
        return f"carbon_sdk.{self.name}"

    def _attribute(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.module), attribute)

    def settings_class(self) -> type[ServiceSettings]:
        """The connector's settings model (imports the module, not its client library)."""
        cls: type[ServiceSettings] = self._attribute("Settings")
        return cls

    def check(self) -> Any:
        """The connector's doctor check: ``check(settings) -> str`` (detail), raising on failure."""
        return self._attribute("check")


CONNECTORS: dict[str, Connector] = {
    c.name: c
    for c in (
        Connector("postgres", "PostgreSQL", "postgres"),
        Connector("s3", "S3 (MinIO)", "s3"),
        Connector("trino", "Trino", "trino"),
    )
}


def connector(name: str) -> Connector:
    """The connector called ``name``, or a ValueError listing the known ones."""
    try:
        return CONNECTORS[name]
    except KeyError:
        known = ", ".join(CONNECTORS)
        raise ValueError(f"unknown service {name!r}; known services: {known}") from None
