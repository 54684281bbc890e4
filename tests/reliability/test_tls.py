"""The TLS matrix: every connector reaches its real server's TLS listener with the stack's CA as
its ``ca_bundle`` setting, and a certificate the configured CA did not sign (the bundle of
another throwaway CA) fails with a :class:`~carbon_sdk.TLSError` that says the certificate is
not trusted and names the setting.

The servers and their TLS listeners are the session stack's (one CA per test run, in the
stack's temporary home): PostgreSQL with ``sslmode=verify-full``, the S3 gateway's HTTPS port,
``trino_secure`` (the https profile), Kafka's SASL_SSL listener and ``mlflow_auth`` (MLflow
over HTTPS). Trino's and Kafka's own TLS tests (tests/trino, tests/kafka) stay where they are;
their listeners are in the matrix too. Results go to docs/reliability.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from carbon_sdk import TLSError, postgres
from carbon_sdk._registry import CONNECTORS
from carbon_sdk.dev.pytest_plugin import StackSession, StartServices
from carbon_sdk.dev.tls import stack_ca
from carbon_sdk.settings import env_var

from .report import TlsLog

Endpoint = Callable[[StackSession], dict[str, object]]


def _ports(session: StackSession, service: str) -> dict[str, int]:
    return next(r.ports for r in session.stack.records() if r.name == service)


def _postgres(session: StackSession) -> dict[str, object]:
    return {**session.settings("postgres"), "sslmode": "verify-full"}


def _s3(session: StackSession) -> dict[str, object]:
    https = f"https://127.0.0.1:{_ports(session, 's3')['https']}"
    return {**session.settings("s3"), "endpoint_url": https}


def _trino(session: StackSession) -> dict[str, object]:
    values = session.settings("trino_secure")
    keys = ("host", "port", "http_scheme", "user", "password")
    return {**{k: values[k] for k in keys}, "auth": "basic"}


def _kafka(session: StackSession) -> dict[str, object]:
    tls = f"127.0.0.1:{_ports(session, 'kafka')['tls']}"
    return {**session.settings("kafka"), "bootstrap_servers": tls, "security_protocol": "SASL_SSL"}


def _mlflow(session: StackSession) -> dict[str, object]:
    return {k: v for k, v in session.settings("mlflow_auth").items() if k != "ca_bundle"}


# connector section -> (stack service, the TLS listener's settings)
MATRIX: dict[str, tuple[str, Endpoint]] = {
    "postgres": ("postgres", _postgres),
    "s3": ("s3", _s3),
    "trino": ("trino_secure", _trino),
    "kafka": ("kafka", _kafka),
    "mlflow": ("mlflow_auth", _mlflow),
}


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The certificate of another throwaway CA, which signed none of the stack's servers."""
    return stack_ca(tmp_path_factory.mktemp("foreign")).cert_pem


@pytest.mark.parametrize("section", MATRIX)
def test_stack_ca_is_trusted_and_another_ca_is_not(
    section: str, carbon_services: StartServices, foreign_ca: Path, tls_log: TlsLog
) -> None:
    service, endpoint = MATRIX[section]
    session = carbon_services(service)
    values = endpoint(session)
    connector = CONNECTORS[section].load()
    assert connector.check(connector.Settings.load(**values, ca_bundle=session.stack.ca_pem()))

    with pytest.raises(TLSError) as info:
        connector.check(connector.Settings.load(**values, ca_bundle=foreign_ca))
    message = str(info.value)
    assert "not trusted" in message, message
    assert f"{section}.ca_bundle" in message, message
    assert env_var(section, "ca_bundle") in message, message
    tls_log(section, service, info.value)


# connectors whose servers have no TLS listener in the stack: their HTTP clients meet a real TLS
# server (the S3 gateway's HTTPS port) that the configured CA did not sign
ELSEWHERE: dict[str, Callable[[str], dict[str, object]]] = {
    "datahub": lambda url: {"gms_url": url},
    "ray": lambda url: {"host": "127.0.0.1", "dashboard_url": url},
}


@pytest.mark.parametrize("section", ELSEWHERE)
def test_other_https_clients_name_their_ca_bundle_too(
    section: str, carbon_services: StartServices, foreign_ca: Path
) -> None:
    https = str(_s3(carbon_services("s3"))["endpoint_url"])
    connector = CONNECTORS[section].load()
    with pytest.raises(TLSError) as info:
        connector.check(connector.Settings.load(**ELSEWHERE[section](https), ca_bundle=foreign_ca))
    message = str(info.value)
    assert "not trusted" in message, message
    assert env_var(section, "ca_bundle") in message, message


def test_postgres_clients_without_a_ca_bundle_still_connect(
    carbon_services: StartServices,
) -> None:
    """TLS on the server changes nothing for the default ``sslmode=prefer`` (encrypted, not
    verified) nor for ``sslmode=disable``."""
    values = carbon_services("postgres").settings("postgres")
    for sslmode in ("prefer", "disable"):
        assert postgres.check(postgres.PostgresSettings.load(**values, sslmode=sslmode))
