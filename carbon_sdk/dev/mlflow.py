"""MLflow for the local stack: ``mlflow server`` (the full ``mlflow`` package of the ``dev`` extra)
on the stack's PostgreSQL (backend store) and S3 (artifacts, proxied by the server).

``mlflow`` runs without authentication; ``mlflow_auth`` is the same server with MLflow's own
``basic-auth`` app (an admin user with a generated password), for authentication tests, served
over HTTPS (uvicorn's TLS, a certificate of the stack's CA: :mod:`carbon_sdk.dev.tls`) as a
deployment sends passwords only over TLS. Each has
its own backend database (``mlflow``, ``mlflow_auth``) and artifact prefix, so they never share
experiment ids. Credentials reach the server through its environment, never its command line.
The job-execution subsystem (not used by the SDK) is off: it more than doubles the memory.
"""

from __future__ import annotations

import shlex
import shutil
import ssl
import sys
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

from carbon_sdk._files import write_atomic

from .ports import HOST
from .service import DevStackError, Service, ServiceContext, http_ok

DATABASE = "mlflow"  # created by the postgres service (DATABASES)
BUCKET = "mlflow"  # created by the s3 service (BUCKETS)
ADMIN_USER = "admin"


def find_mlflow() -> Path:
    """The ``mlflow`` command installed next to this Python, else on PATH."""
    beside_python = Path(sys.executable).parent / "mlflow"
    if beside_python.is_file():
        return beside_python
    if on_path := shutil.which("mlflow"):
        return Path(on_path)
    raise DevStackError(
        "the `mlflow` command (the MLflow server) was not found. Install the stack's servers"
        " with `pip install 'carbon-sdk[dev]'` (PyPI package mlflow)."
    )


def _backend_uri(pg: dict[str, object], database: str) -> str:
    """SQLAlchemy URL of ``database`` on the stack's PostgreSQL (psycopg 3 driver)."""
    user, password = quote(str(pg["user"]), safe=""), quote(str(pg["password"]), safe="")
    return f"postgresql+psycopg://{user}:{password}@{pg['host']}:{pg['port']}/{database}"


class MlflowService(Service):
    """An MLflow tracking server, artifacts proxied to ``s3://mlflow/``, no authentication."""

    name = "mlflow"
    depends_on = ("postgres", "s3")
    ports: ClassVar[tuple[str, ...]] = ("http",)
    main_port = "http"
    scheme = "http"
    ready_timeout = 120.0  # about 7 s on an idle machine (migrations on a fresh database: more)
    database = DATABASE
    artifacts = f"s3://{BUCKET}/"

    def prepare(self, ctx: ServiceContext) -> None:
        """Check the server is installed and its backend database exists."""
        find_mlflow()
        self.ensure_database(ctx)

    def ensure_database(self, ctx: ServiceContext) -> None:
        """The backend store database: provisioned by the postgres service for ``mlflow``."""

    def command(self, ctx: ServiceContext) -> list[str]:
        """``mlflow server`` on 127.0.0.1, one worker; stores come from :meth:`env`."""
        return [
            str(find_mlflow()),
            "server",
            "--host",
            HOST,
            "--port",
            str(ctx.ports[self.main_port]),
            "--workers",
            "1",
            *self.extra_args(ctx),
        ]

    def extra_args(self, ctx: ServiceContext) -> list[str]:
        """More ``mlflow server`` arguments for subclasses."""
        return []

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """The stores (PostgreSQL URL with its password, S3 endpoint and keys), telemetry off,
        job execution off."""
        pg, s3 = ctx.dependency("postgres"), ctx.dependency("s3")
        return {
            "MLFLOW_BACKEND_STORE_URI": _backend_uri(pg, self.database),
            "MLFLOW_ARTIFACTS_DESTINATION": self.artifacts,
            "MLFLOW_S3_ENDPOINT_URL": str(s3["endpoint_url"]),
            "AWS_ACCESS_KEY_ID": str(s3["access_key_id"]),
            "AWS_SECRET_ACCESS_KEY": str(s3["secret_access_key"]),
            "AWS_DEFAULT_REGION": str(s3["region"]),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }

    def probe(self, ctx: ServiceContext) -> bool:
        """``GET /health`` answers 200."""
        return http_ok(f"{self.url(ctx)}/health")

    def url(self, ctx: ServiceContext) -> str:
        """The server's base URL."""
        return f"{self.scheme}://{HOST}:{ctx.ports[self.main_port]}"

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``tracking_uri`` (artifacts are proxied by the server)."""
        return {"tracking_uri": self.url(ctx)}


class AuthMlflowService(MlflowService):
    """The same server with MLflow's ``basic-auth`` app, over HTTPS: every request needs a
    user and password (the admin's is generated per stack); ``/health`` stays open."""

    name = "mlflow_auth"
    ports: ClassVar[tuple[str, ...]] = ("https",)
    main_port = "https"
    scheme = "https"
    secrets = ("password", "flask_secret_key")
    default = False  # another server (~570 MB): only when asked for
    database = "mlflow_auth"
    artifacts = f"s3://{BUCKET}/mlflow_auth/"

    def ensure_database(self, ctx: ServiceContext) -> None:
        """Create the ``mlflow_auth`` database unless it exists (psycopg, as the superuser)."""
        try:
            import psycopg
        except ImportError as exc:
            raise DevStackError("mlflow_auth needs psycopg: pip install 'carbon-sdk[dev]'") from exc
        pg = ctx.dependency("postgres")
        conninfo = psycopg.conninfo.make_conninfo(
            host=str(pg["host"]),
            port=str(pg["port"]),
            user=str(pg["user"]),
            password=str(pg["password"]),
            dbname="postgres",
            connect_timeout="10",
        )
        with psycopg.connect(conninfo, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
            if found.fetchone() is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def prepare(self, ctx: ServiceContext) -> None:
        """The database, the server certificate, and the auth app's config (its user store:
        SQLite in the home)."""
        super().prepare(ctx)
        ctx.server_certificate(ctx.home / "tls")
        config = "\n".join(
            [
                "[mlflow]",
                "default_permission = READ",
                f"database_uri = sqlite:///{ctx.home / 'basic_auth.db'}",
                f"admin_username = {ADMIN_USER}",
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
                "",
            ]
        )
        write_atomic(ctx.home / "basic_auth.ini", config, 0o600)

    def extra_args(self, ctx: ServiceContext) -> list[str]:
        """``--app-name basic-auth``, and uvicorn's TLS options (the keystore holds the key and
        the certificate chain; each option reads its part)."""
        keystore = shlex.quote(str(ctx.home / "tls" / "server.pem"))
        tls = f"--ssl-certfile {keystore} --ssl-keyfile {keystore}"
        return ["--app-name", "basic-auth", "--uvicorn-opts", tls]

    def probe(self, ctx: ServiceContext) -> bool:
        """``GET /health`` answers 200 over TLS, trusting the stack's CA."""
        context = ssl.create_default_context(cafile=str(ctx.ca_pem()))
        return http_ok(f"{self.url(ctx)}/health", context=context)

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """The auth config file, the admin password (used when the user store is new) and the
        Flask secret key the auth app signs its CSRF tokens with."""
        return {
            **super().env(ctx),
            "MLFLOW_AUTH_CONFIG_PATH": str(ctx.home / "basic_auth.ini"),
            "MLFLOW_AUTH_ADMIN_PASSWORD": ctx.secrets["password"],
            "MLFLOW_FLASK_SERVER_SECRET_KEY": ctx.secrets["flask_secret_key"],  # CSRF tokens
        }

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``tracking_uri`` (https), ``ca_bundle`` (the stack's CA), ``username`` and
        ``password`` of the admin user."""
        return {
            **super().settings(ctx),
            "ca_bundle": str(ctx.ca_pem()),
            "username": ADMIN_USER,
            "password": ctx.secrets["password"],
        }
