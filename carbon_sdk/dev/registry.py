"""The services ``carbon-sdk dev`` knows, in start order for ``dev up`` without arguments.

Adding a server: write ``carbon_sdk/dev/<name>.py`` with a :class:`~carbon_sdk.dev.service.Service`
subclass and add one line below.
"""

from __future__ import annotations

from .jupyterhub import JupyterHubService
from .jupyterhub_oidc import OidcJupyterHubService
from .kafka import KafkaService
from .keycloak import KeycloakService
from .mlflow import AuthMlflowService, MlflowService
from .postgres import PostgresService
from .ray import RayService
from .s3 import S3Service
from .service import Service
from .trino import OidcTrinoService, SecureTrinoService, TrinoService

SERVICES: dict[str, Service] = {
    service.name: service
    for service in (
        PostgresService(),
        S3Service(),
        TrinoService(),
        SecureTrinoService(),
        KeycloakService(),
        OidcTrinoService(),
        JupyterHubService(),
        OidcJupyterHubService(),
        MlflowService(),
        AuthMlflowService(),
        KafkaService(),
        RayService(),
    )
}
