"""The connectors carbon-sdk knows: the one list that settings, doctor, the CLI and the tests
iterate.

Adding a connector is its module (``carbon_sdk/<name>.py``: a ``Settings`` model, client
factories, helpers and a ``check``), one line in :data:`CONNECTORS`, its docs page and tests.
Nothing is imported until used: an entry names its module, which is imported on first access
(the module itself imports its client library only inside the functions that need it).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, cast

from carbon_sdk._suggest import did_you_mean
from carbon_sdk.errors import ConfigurationError

if TYPE_CHECKING:
    from carbon_sdk.settings import ServiceSettings


class ConnectorModule(Protocol):
    """What every connector module provides (checked for each entry by the contract test)."""

    Settings: type[ServiceSettings]

    def check(self, settings: ServiceSettings, /) -> str:
        """Doctor: reach the service with ``settings``; return a detail line or raise a
        carbon-sdk error."""
        ...


@dataclass(frozen=True)
class Connector:
    """One service.

    Attributes:
        name: the module name, settings section and ``CARBON_<NAME>__`` prefix.
        title: the product name shown to people (doctor, docs).
        extra: the ``pip install 'carbon-sdk[extra]'`` that brings its client library.
    """

    name: str
    title: str
    extra: str

    @property
    def module_name(self) -> str:
        """The connector's module, e.g. ``carbon_sdk.postgres``."""
        return f"carbon_sdk.{self.name}"

    def load(self) -> ConnectorModule:
        """The connector's module (imported on first use; it imports no client library)."""
        return cast("ConnectorModule", importlib.import_module(self.module_name))

    def settings_class(self) -> type[ServiceSettings]:
        """The connector's settings model."""
        return self.load().Settings


CONNECTORS: dict[str, Connector] = {
    c.name: c
    for c in (
        Connector("postgres", "PostgreSQL", "postgres"),
        Connector("s3", "S3 (MinIO)", "s3"),
        Connector("trino", "Trino", "trino"),
        Connector("mlflow", "MLflow", "mlflow"),
        Connector("datahub", "DataHub", "datahub"),
        Connector("kafka", "Kafka", "kafka"),
        Connector("ray", "Ray", "ray"),
    )
}


def connector(name: str) -> Connector:
    """The connector called ``name``, or a ConfigurationError listing the known ones."""
    try:
        return CONNECTORS[name]
    except KeyError:
        known = ", ".join(CONNECTORS)
        raise ConfigurationError(
            f"unknown service {name!r}{did_you_mean(name, CONNECTORS)}; known services: {known}"
        ) from None
