"""PostgreSQL: settings, a configured psycopg 3 connection, and the doctor check."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr

from carbon_sdk._lazy import import_client
from carbon_sdk.errors import AuthFailed, NotFound, ServiceError, TLSError, Unreachable
from carbon_sdk.settings import ServiceSettings
from carbon_sdk.settings.carbon import service_settings

if TYPE_CHECKING:
    import psycopg

SERVICE = "postgres"


class PostgresSettings(ServiceSettings):
    """Where the platform's PostgreSQL is and how to log in (libpq's ``PG*`` variables work)."""

    service: ClassVar[str] = SERVICE
    required: ClassVar[tuple[str, ...]] = ("host", "user")
    endpoint_fields: ClassVar[tuple[str, ...]] = ("host", "port")
    env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {
        "host": ("PGHOST",),
        "port": ("PGPORT",),
        "user": ("PGUSER",),
        "password": ("PGPASSWORD",),
        "database": ("PGDATABASE",),
        "sslmode": ("PGSSLMODE",),
        "ca_bundle": ("PGSSLROOTCERT",),
    }

    host: str | None = Field(None, description="Server host name or address.")
    port: int = Field(5432, gt=0, lt=65536, description="Server port.")
    user: str | None = Field(None, description="Role to log in as.")
    password: SecretStr | None = Field(None, description="Password of the role.")
    database: str | None = Field(None, description="Database to connect to (default: the user).")
    sslmode: str = Field(
        "prefer", description="libpq sslmode: disable, prefer, require, verify-full."
    )
    application_name: str = Field("carbon-sdk", description="Shown in pg_stat_activity.")

    @property
    def endpoint(self) -> str:
        """``host:port/database``, without credentials."""
        return f"{self.host}:{self.port}/{self.database or self.user}"

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (the password unwrapped here only)."""
        self.require()
        kwargs: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.database or self.user,
            "password": self.secret("password"),
            "sslmode": self.sslmode,
            "application_name": self.application_name,
            "connect_timeout": max(1, round(self.connect_timeout)),
        }
        if self.ca_bundle:
            kwargs["sslrootcert"] = str(self.ca_bundle)
        return kwargs


Settings = PostgresSettings


def classify(exc: Exception, settings: PostgresSettings) -> ServiceError:
    """Turn a psycopg error into the carbon-sdk error that says what went wrong."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    state = getattr(exc, "sqlstate", None)
    lowered = text.lower()
    endpoint = settings.endpoint
    if state in {"28P01", "28000"} or "password authentication failed" in lowered:
        return AuthFailed(SERVICE, endpoint, f"{text} (check postgres.user and postgres.password)")
    if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return NotFound(SERVICE, endpoint, f"{text} (check postgres.database)")
    if "invalid response" in lowered or "expected authentication request" in lowered:
        return ServiceError(SERVICE, endpoint, f"{text} (is this a PostgreSQL server? check port)")
    if "ssl" in lowered or "certificate" in lowered:
        return TLSError(SERVICE, endpoint, f"{text} (check postgres.sslmode and ca_bundle)")
    if any(s in lowered for s in ("refused", "timeout", "could not translate", "no route")):
        return Unreachable(SERVICE, endpoint, text)
    return ServiceError(SERVICE, endpoint, text)


def connect(**overrides: Any) -> psycopg.Connection[Any]:
    """A new psycopg connection to the platform's PostgreSQL (autocommit off).

    ``overrides`` are settings on top of the configured ones, e.g. ``connect(database="mlflow")``.
    """
    settings: PostgresSettings = service_settings(SERVICE, **overrides)
    psycopg_mod = import_client("psycopg", "postgres")
    try:
        conn: psycopg.Connection[Any] = psycopg_mod.connect(**settings.connect_kwargs())
    except psycopg_mod.Error as exc:
        raise classify(exc, settings) from None
    return conn


def check(settings: PostgresSettings) -> str:
    """Doctor: connect, then ``select version(), current_user``."""
    psycopg_mod = import_client("psycopg", "postgres")
    try:
        with psycopg_mod.connect(**settings.connect_kwargs()) as conn:
            row = conn.execute("select current_setting('server_version'), current_user").fetchone()
    except psycopg_mod.Error as exc:
        raise classify(exc, settings) from None
    version, user = row if row else ("?", "?")
    return f"PostgreSQL {version} as {user} on {settings.database or settings.user}"
