"""PostgreSQL for the local stack: the machine's own server binaries, one cluster per stack.

The cluster's superuser is ``carbon`` with a generated password (SCRAM, over TCP on 127.0.0.1
only). Durability settings are off: this is a development database. As root, the server and
``initdb`` run as the ``postgres`` OS user (PostgreSQL refuses root) on a data directory under
``/tmp`` that user can reach; it is recorded in the state and removed by ``down --purge``.

TLS is on (``ssl=on``) with a certificate of the stack's CA (:mod:`carbon_sdk.dev.tls`) for
``127.0.0.1`` and ``localhost``: ``sslmode=verify-full`` with the CA as ``sslrootcert`` works,
and clients with the default ``sslmode=prefer`` (or ``disable``) connect as before.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from .ports import HOST
from .service import DevStackError, Service, ServiceContext

BIN_ENV = "CARBON_DEV_POSTGRES_BIN"
SUPERUSER = "carbon"
DATABASES = ("mlflow", "iceberg_catalog", "analytics")
DEFAULT_DATABASE = "analytics"
_ROOT_OS_USER = "postgres"
_MAX_SOCKET_DIR = 80  # a Unix socket path must stay under ~107 bytes


def find_bin_dir() -> Path:
    """The PostgreSQL server ``bin`` directory: ``$CARBON_DEV_POSTGRES_BIN``, else the newest
    ``/usr/lib/postgresql/*/bin``, else the one holding ``postgres`` on ``PATH``."""
    if explicit := os.environ.get(BIN_ENV):
        candidates = [Path(explicit)]
    else:
        found = Path("/usr/lib/postgresql").glob("*/bin")
        candidates = sorted(found, key=lambda p: _version_key(p.parent.name), reverse=True)
        if on_path := shutil.which("postgres"):
            candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("postgres", "initdb", "pg_isready")):
            return directory
    raise DevStackError(
        "PostgreSQL server binaries (postgres, initdb) not found in /usr/lib/postgresql/*/bin or"
        f" on PATH. Install the Debian package `postgresql` (apt-get install postgresql), or set"
        f" {BIN_ENV} to the directory that holds them."
    )


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


class PostgresService(Service):
    """A PostgreSQL cluster with the databases the platform's consumers expect."""

    name = "postgres"
    ports = ("postgres",)
    main_port = "postgres"
    secrets = ("password",)
    stop_signal = signal.SIGINT  # "fast" shutdown: does not wait for clients to disconnect

    def user(self, ctx: ServiceContext) -> str | None:
        """``postgres`` when running as root (the server refuses root), else the current user."""
        return _ROOT_OS_USER if os.geteuid() == 0 else None

    def workdir(self, ctx: ServiceContext) -> Path:
        """The directory that holds the cluster (reachable by the server's OS user)."""
        if self.user(ctx) is None:
            return ctx.home
        base = ctx.paths.get("base")
        if base and Path(base).is_dir():
            return Path(base)
        created = tempfile.mkdtemp(dir="/tmp", prefix="carbon-dev-postgres-")
        shutil.chown(created, _ROOT_OS_USER, _ROOT_OS_USER)
        ctx.paths["base"] = created
        return Path(created)

    def prepare(self, ctx: ServiceContext) -> None:
        """Issue the server certificate, and create the cluster with ``initdb`` unless it
        already exists."""
        base = self.workdir(ctx)
        self._certificate(ctx, base)
        data = base / "data"
        if (data / "PG_VERSION").is_file():
            return
        shutil.rmtree(data, ignore_errors=True)  # a half-made cluster from a failed initdb
        pwfile = base / "pwfile"
        pwfile.write_text(ctx.secrets["password"] + "\n")
        pwfile.chmod(0o600)
        user = self.user(ctx)
        if user:
            shutil.chown(pwfile, user, user)
        try:
            ctx.run(
                [
                    str(find_bin_dir() / "initdb"),
                    f"--pgdata={data}",
                    f"--username={SUPERUSER}",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                user=user,
                cwd=base,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _certificate(self, ctx: ServiceContext, base: Path) -> None:
        """The server's keystore (key, certificate, CA), owned by the server's OS user: the
        server refuses a key file another user owns unless root owns it."""
        keystore = ctx.server_certificate(base / "tls").keystore_pem
        if user := self.user(ctx):
            for path in (keystore.parent, keystore):
                shutil.chown(path, user, user)

    def command(self, ctx: ServiceContext) -> list[str]:
        """The ``postgres`` server in the foreground, listening on 127.0.0.1 only, with TLS (the
        keystore holds the key and the certificate chain; each setting reads its part)."""
        base = self.workdir(ctx)
        keystore = base / "tls" / "server.pem"
        socket_dir = str(base) if len(str(base)) <= _MAX_SOCKET_DIR else ""
        return [
            str(find_bin_dir() / "postgres"),
            "-D",
            str(base / "data"),
            "-c",
            f"listen_addresses={HOST}",
            "-p",
            str(ctx.ports["postgres"]),
            "-k",
            socket_dir,
            "-c",
            "ssl=on",
            "-c",
            f"ssl_cert_file={keystore}",
            "-c",
            f"ssl_key_file={keystore}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]

    def probe(self, ctx: ServiceContext) -> bool:
        """``pg_isready`` over TCP: the server accepts connections."""
        ready = subprocess.run(
            [
                str(find_bin_dir() / "pg_isready"),
                "--quiet",
                f"--host={HOST}",
                f"--port={ctx.ports['postgres']}",
                "--timeout=1",
            ],
            check=False,
        )
        return ready.returncode == 0

    def after_start(self, ctx: ServiceContext) -> None:
        """Create the databases in :data:`DATABASES` that do not exist yet."""
        psql = [
            str(find_bin_dir() / "psql"),
            "--no-psqlrc",
            f"--host={HOST}",
            f"--port={ctx.ports['postgres']}",
            f"--username={SUPERUSER}",
            "--dbname=postgres",
            "--set=ON_ERROR_STOP=1",
        ]
        env = {**os.environ, "PGPASSWORD": ctx.secrets["password"]}
        existing = ctx.run([*psql, "-tAc", "SELECT datname FROM pg_database"], env=env).split()
        creates = [f'CREATE DATABASE "{db}"' for db in DATABASES if db not in existing]
        if creates:
            ctx.run([*psql, *(arg for sql in creates for arg in ("-c", sql))], env=env)

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``host``, ``port``, ``user``, ``password`` and ``database`` (``analytics``)."""
        return {
            "host": HOST,
            "port": ctx.ports["postgres"],
            "user": SUPERUSER,
            "password": ctx.secrets["password"],
            "database": DEFAULT_DATABASE,
        }
