"""Trino for the local stack: the official Trino server distribution, fetched once with Maven.

Three services share one cached server distribution:

``trino``
    plain HTTP, no authentication; catalogs ``iceberg`` (JDBC catalog in the stack's PostgreSQL
    database ``iceberg_catalog``, data in ``s3://warehouse/`` on the stack's SeaweedFS), ``tpch``
    and ``memory``.
``trino_secure``
    the same catalogs behind HTTPS (a self-signed CA generated for the stack) with
    ``PASSWORD,JWT`` authentication (a password file and an HS256 key file). Not started by a
    bare ``dev up``: it costs another JVM.
``trino_oidc``
    the same behind HTTPS with ``JWT`` authentication only, against the JWKS of the stack's
    Keycloak realm (:mod:`carbon_sdk.dev.keycloak`); for the end-to-end test. Only when named.

The distribution is ``io.trino:trino-server-core:<version>:tar.gz`` plus the plugin zips in
:data:`PLUGINS`, fetched with the machine's ``mvn`` and unpacked into the cache entry
``~/.cache/carbon-sdk/trino/<version>`` by :mod:`carbon_sdk.dev.maven` (locked, built in a
temporary directory, checked against the sha256 of every file). Each server runs
``bin/launcher run`` in the foreground (the launcher execs the JVM in place, so the recorded pid
is the JVM), bound to 127.0.0.1 by ``node.bind-ip``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import shutil
import ssl
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import ClassVar

from carbon_sdk._files import write_atomic

from . import maven
from .java import find_java_home
from .ports import HOST
from .postgres import find_bin_dir
from .service import DevStackError, Service, ServiceContext

# 476 is the newest release whose server tarball and plugin zips are on Maven Central: since
# 477 Trino publishes releases on GitHub only, and for 483 Central has neither
# trino-server-core:tar.gz nor any plugin :zip ("Could not find artifact
# io.trino:trino-server-core:tar.gz:483 in central"). 476 runs on Java 24+.
TRINO_VERSION = "476"
MIN_JAVA = 24
CACHE_ENV = "CARBON_DEV_TRINO_CACHE"
PLUGINS = ("iceberg", "memory", "tpch")
USER = "carbon"
CATALOG_DATABASE = "iceberg_catalog"
WAREHOUSE = "s3://warehouse/"
SPOOL_BUCKET = "trino-spool"  # created by the s3 service; one prefix per Trino server
HEAP = "2G"  # two servers (trino + trino_secure) fit a 2-core 24 GiB machine with room to spare

# The Iceberg JDBC catalog does not create its own tables (schema V1, with iceberg_type).
_CATALOG_TABLES_SQL = """
CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
  catalog_name VARCHAR(255) NOT NULL,
  namespace VARCHAR(255) NOT NULL,
  property_key VARCHAR(255),
  property_value VARCHAR(1000),
  PRIMARY KEY (catalog_name, namespace, property_key));
CREATE TABLE IF NOT EXISTS iceberg_tables (
  catalog_name VARCHAR(255) NOT NULL,
  table_namespace VARCHAR(255) NOT NULL,
  table_name VARCHAR(255) NOT NULL,
  metadata_location VARCHAR(1000),
  previous_metadata_location VARCHAR(1000),
  iceberg_type VARCHAR(5),
  PRIMARY KEY (catalog_name, table_namespace, table_name));
"""

_JVM_CONFIG = f"""\
-Xmx{HEAP}
-XX:+UseG1GC
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:PerMethodRecompilationCutoff=10000
-XX:PerBytecodeRecompilationCutoff=10000
-Djdk.attach.allowAttachSelf=true
-XX:+EnableDynamicAgentLoading
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
--enable-native-access=ALL-UNNAMED
--add-modules=jdk.incubator.vector
"""


# -- the server distribution -----------------------------------------------------------------


def java_home() -> Path:
    """A JDK new enough for Trino (see :func:`carbon_sdk.dev.java.find_java_home`)."""
    return find_java_home(MIN_JAVA, purpose=f"Trino {TRINO_VERSION}")


def cache_dir() -> Path:
    """``$CARBON_DEV_TRINO_CACHE``, else ``$XDG_CACHE_HOME/carbon-sdk/trino/<version>``."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser().absolute()
    return maven.cache_dir("trino", TRINO_VERSION)


def artifacts() -> list[maven.Artifact]:
    """Everything the server needs: the core tarball first, then the plugin zips."""
    core = maven.Artifact("io.trino", "trino-server-core", TRINO_VERSION, "tar.gz")
    plugins = [maven.Artifact("io.trino", f"trino-{p}", TRINO_VERSION, "zip") for p in PLUGINS]
    return [core, *plugins]


def is_cached(cache: Path | None = None) -> bool:
    """Whether the complete, intact server distribution is in the cache."""
    return maven.is_complete(cache or cache_dir(), [str(a) for a in artifacts()])


def server_dir(cache: Path | None = None) -> Path:
    """Where the unpacked server is (or will be, after :func:`ensure_server`)."""
    return maven.content_dir(cache or cache_dir())


def ensure_server(ctx: ServiceContext, cache: Path | None = None) -> Path:
    """The unpacked server directory, fetched and unpacked first if the cache is not complete
    and intact. Safe to call from several services at once (a lock file serializes them)."""
    sources = [str(a) for a in artifacts()]
    return maven.ensure_cached(
        ctx, cache or cache_dir(), sources, lambda target: _unpack_server(ctx, target)
    )


def _unpack_server(ctx: ServiceContext, server: Path) -> None:
    """Fetch the archives next to ``server`` and unpack them into it (plugins in ``plugin/``)."""
    scratch = server.parent
    wanted = artifacts()
    for artifact, archive in zip(
        wanted, maven.copy_artifacts(ctx, wanted, scratch / "archives"), strict=True
    ):
        unpacked = f"{artifact.artifact}-{TRINO_VERSION}"
        if artifact.extension == "tar.gz":
            with tarfile.open(archive) as tar:
                tar.extractall(scratch, filter="data")
            (scratch / unpacked).rename(server)
        else:
            plugin_dir = server / "plugin"
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(plugin_dir)  # noqa: S202 - zipfile drops '..' and '/'
            name = artifact.artifact.removeprefix("trino-")
            shutil.rmtree(plugin_dir / name, ignore_errors=True)
            (plugin_dir / unpacked).rename(plugin_dir / name)
        archive.unlink()
    if not (server / "bin" / "launcher").is_file():
        raise DevStackError(f"{ctx.name}: the Trino server tarball has no bin/launcher")


# -- configuration ---------------------------------------------------------------------------


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def _create_catalog_tables(ctx: ServiceContext, pg: dict[str, object]) -> None:
    ctx.run(
        [
            str(find_bin_dir() / "psql"),
            "--no-psqlrc",
            f"--host={pg['host']}",
            f"--port={pg['port']}",
            f"--username={pg['user']}",
            f"--dbname={CATALOG_DATABASE}",
            "--set=ON_ERROR_STOP=1",
            "--quiet",
            "-c",
            _CATALOG_TABLES_SQL,
        ],
        env={**os.environ, "PGPASSWORD": str(pg["password"])},
    )


def _catalogs(pg: dict[str, object], s3: dict[str, object]) -> dict[str, dict[str, object]]:
    return {
        "iceberg": {
            "connector.name": "iceberg",
            "iceberg.catalog.type": "jdbc",
            "iceberg.jdbc-catalog.catalog-name": "carbon",
            "iceberg.jdbc-catalog.driver-class": "org.postgresql.Driver",
            "iceberg.jdbc-catalog.connection-url": (
                f"jdbc:postgresql://{pg['host']}:{pg['port']}/{CATALOG_DATABASE}"
            ),
            "iceberg.jdbc-catalog.connection-user": pg["user"],
            "iceberg.jdbc-catalog.connection-password": pg["password"],
            "iceberg.jdbc-catalog.default-warehouse-dir": WAREHOUSE,
            "fs.native-s3.enabled": "true",  # 476's name (renamed fs.s3.enabled later)
            "s3.endpoint": s3["endpoint_url"],
            "s3.path-style-access": "true",
            "s3.region": s3["region"],
            "s3.aws-access-key": s3["access_key_id"],
            "s3.aws-secret-key": s3["secret_access_key"],
        },
        "tpch": {"connector.name": "tpch"},
        "memory": {"connector.name": "memory"},
    }


class TrinoService(Service):
    """A single-node Trino (coordinator and worker in one JVM) over plain HTTP."""

    name = "trino"
    # s3: the Iceberg warehouse and the spooling storage
    depends_on: ClassVar[tuple[str, ...]] = ("postgres", "s3")
    secrets: ClassVar[tuple[str, ...]] = ("spool_key",)
    ports: ClassVar[tuple[str, ...]] = ("http",)
    main_port = "http"
    ready_timeout = 180.0
    stop_timeout = 30.0

    def etc_dir(self, ctx: ServiceContext) -> Path:
        """The generated configuration directory (``--etc-dir``)."""
        return ctx.home / "etc"

    def data_dir(self, ctx: ServiceContext) -> Path:
        """The server's data directory (``--data-dir``; logs under ``var/log``)."""
        return ctx.home / "data"

    def prepare(self, ctx: ServiceContext) -> None:
        """Fetch the server if needed, create the Iceberg catalog tables and write ``etc/``."""
        java_home()  # fail before a 570 MB download if Trino could not run anyway
        ensure_server(ctx)
        pg, s3 = ctx.dependency("postgres"), ctx.dependency("s3")
        _create_catalog_tables(ctx, pg)
        etc = self.etc_dir(ctx)
        shutil.rmtree(etc / "catalog", ignore_errors=True)
        self.data_dir(ctx).mkdir(exist_ok=True)
        write_atomic(
            etc / "node.properties",
            _properties(
                {
                    "node.environment": "carbon_dev",
                    "node.id": f"carbon-dev-{self.name.replace('_', '-')}",
                    "node.data-dir": self.data_dir(ctx),
                    "node.bind-ip": HOST,
                    "node.internal-address": HOST,
                }
            ),
            0o644,
        )
        write_atomic(etc / "jvm.config", _JVM_CONFIG, 0o644)
        write_atomic(etc / "log.properties", "io.trino=INFO\n", 0o644)
        http = ctx.ports["http"]
        config: dict[str, object] = {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": http,
            "discovery.uri": f"http://{HOST}:{http}",
        }
        config.update(self.spooling_config(ctx, s3))
        config.update(self.extra_config(ctx))
        write_atomic(etc / "config.properties", _properties(config), 0o600)
        for catalog, values in _catalogs(pg, s3).items():
            write_atomic(etc / "catalog" / f"{catalog}.properties", _properties(values), 0o600)

    def spooling_config(self, ctx: ServiceContext, s3: dict[str, object]) -> dict[str, object]:
        """The spooled protocol's ``config.properties`` entries; writes
        ``etc/spooling-manager.properties`` (segments in ``s3://trino-spool/<service>/``).

        The shared secret key must be the base64 of 32 bytes: it is derived from the stack's
        generated ``spool_key`` secret, so it is stable across restarts of one stack.
        """
        key = base64.b64encode(hashlib.sha256(ctx.secrets["spool_key"].encode()).digest())
        write_atomic(
            self.etc_dir(ctx) / "spooling-manager.properties",
            _properties(
                {
                    "spooling-manager.name": "filesystem",
                    "fs.s3.enabled": "true",
                    "fs.location": f"s3://{SPOOL_BUCKET}/{self.name}/",
                    "s3.endpoint": s3["endpoint_url"],
                    "s3.region": s3["region"],
                    "s3.aws-access-key": s3["access_key_id"],
                    "s3.aws-secret-key": s3["secret_access_key"],
                    "s3.path-style-access": "true",
                }
            ),
            0o600,
        )
        return {
            "protocol.spooling.enabled": "true",
            "protocol.spooling.shared-secret-key": key.decode(),
            "protocol.spooling.retrieval-mode": "storage",
        }

    def extra_config(self, ctx: ServiceContext) -> dict[str, object]:
        """More ``config.properties`` entries (and files they point to) for subclasses."""
        return {}

    def command(self, ctx: ServiceContext) -> list[str]:
        """``bin/launcher run`` in the foreground; the launcher execs the JVM in place."""
        launcher = server_dir() / "bin" / "launcher"  # fetched and checked by prepare
        return [
            str(launcher),
            "run",
            f"--etc-dir={self.etc_dir(ctx)}",
            f"--data-dir={self.data_dir(ctx)}",
        ]

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """``JAVA_HOME`` of a JDK new enough for Trino (the launcher runs its ``bin/java``)."""
        return {"JAVA_HOME": str(java_home())}

    def probe(self, ctx: ServiceContext) -> bool:
        """``GET /v1/info`` answers with ``"starting": false`` and a query that needs a worker
        runs (right after start the coordinator may not list itself as a worker yet: "nodes is
        empty", NO_NODES_AVAILABLE)."""
        url = f"http://{HOST}:{ctx.ports['http']}"
        return _info_ready(f"{url}/v1/info") and _query_ready(url)

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``host``, ``port``, ``http_scheme`` (``http``), ``user`` and ``catalog``."""
        return {
            "host": HOST,
            "port": ctx.ports["http"],
            "http_scheme": "http",
            "user": USER,
            "catalog": "iceberg",
        }


class SecureTrinoService(TrinoService):
    """The same server behind HTTPS with ``PASSWORD,JWT`` authentication, for auth tests.

    The server certificate is signed by the stack's CA (:mod:`carbon_sdk.dev.tls`; both renewed
    when near expiry);
    the password (PBKDF2 in Trino's password file) and the HS256 JWT signing key come from
    the stack's generated secrets. Plain HTTP stays on for Trino's internal traffic, but refuses
    authenticated requests.
    """

    name = "trino_secure"
    ports = ("http", "https")
    main_port = "https"
    secrets: ClassVar[tuple[str, ...]] = ("password", "jwt_key", "shared_secret", "spool_key")
    default = False  # another JVM (~1 GB, ~20 s): only when asked for

    def tls_dir(self, ctx: ServiceContext) -> Path:
        """Where the keystore, password file and JWT key live (mode 0700)."""
        return ctx.home / "tls"

    def extra_config(self, ctx: ServiceContext) -> dict[str, object]:
        """HTTPS, the file password authenticator and the JWT key; writes their files."""
        tls = self.tls_dir(ctx)
        tls.mkdir(mode=0o700, exist_ok=True)
        certificate = ctx.server_certificate(tls)
        password = f"{USER}:{pbkdf2_hash(ctx.secrets['password'])}\n"
        write_atomic(tls / "password.db", password, 0o600)
        key = base64.b64encode(ctx.secrets["jwt_key"].encode()).decode()
        write_atomic(tls / "jwt.key", key + "\n", 0o600)
        write_atomic(
            self.etc_dir(ctx) / "password-authenticator.properties",
            _properties(
                {"password-authenticator.name": "file", "file.password-file": tls / "password.db"}
            ),
            0o644,
        )
        return {
            "http-server.https.enabled": "true",
            "http-server.https.port": ctx.ports["https"],
            "http-server.https.keystore.path": certificate.keystore_pem,
            "http-server.authentication.type": "PASSWORD,JWT",
            "http-server.authentication.jwt.key-file": tls / "jwt.key",
            "internal-communication.shared-secret": ctx.secrets["shared_secret"],
        }

    def probe(self, ctx: ServiceContext) -> bool:
        """``GET /v1/info`` over HTTPS (verified with the stack's CA) says it is not starting."""
        context = ssl.create_default_context(cafile=str(ctx.ca_pem()))
        url = f"https://{HOST}:{ctx.ports['https']}"
        basic = base64.b64encode(f"{USER}:{ctx.secrets['password']}".encode()).decode()
        return _info_ready(f"{url}/v1/info", context) and _query_ready(
            url, context, {"Authorization": f"Basic {basic}"}
        )

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """What a client needs: ``host``, ``port`` (HTTPS), ``http_scheme``, ``ca_bundle``,
        ``user``, ``password``, ``catalog``, and ``jwt_key`` (the HS256 signing key, used as its
        UTF-8 bytes; see :func:`mint_jwt`) with ``jwt_key_file`` (Trino's base64 copy of it)."""
        tls = self.tls_dir(ctx)
        return {
            "host": HOST,
            "port": ctx.ports["https"],
            "http_scheme": "https",
            "ca_bundle": str(ctx.ca_pem()),
            "user": USER,
            "password": ctx.secrets["password"],
            "catalog": "iceberg",
            "jwt_key": ctx.secrets["jwt_key"],
            "jwt_key_file": str(tls / "jwt.key"),
        }


class OidcTrinoService(SecureTrinoService):
    """The same server behind HTTPS validating JWTs against the stack's Keycloak (``JWT``
    authentication only): the key file is the realm's JWKS URL, tokens must be issued by the
    realm for the ``jupyterhub`` client (``aud``), and the user is the token's
    ``principal_field`` claim, the hub's username claim. So a notebook's query runs as the
    logged-in user with the user's own access token, and no shared credential exists.

    Args:
        principal_field: the claim that names the user (the chart's ``username_claim``).
    """

    name = "trino_oidc"
    depends_on: ClassVar[tuple[str, ...]] = ("postgres", "s3", "keycloak")
    secrets: ClassVar[tuple[str, ...]] = ("shared_secret", "spool_key")

    def __init__(self, principal_field: str = "email") -> None:
        self.principal_field = principal_field

    def extra_config(self, ctx: ServiceContext) -> dict[str, object]:
        """HTTPS and JWT authentication against the realm's JWKS, issuer and audience."""
        keycloak = ctx.dependency("keycloak")
        tls = self.tls_dir(ctx)
        tls.mkdir(mode=0o700, exist_ok=True)
        certificate = ctx.server_certificate(tls)
        return {
            "http-server.https.enabled": "true",
            "http-server.https.port": ctx.ports["https"],
            "http-server.https.keystore.path": certificate.keystore_pem,
            "http-server.authentication.type": "JWT",
            "http-server.authentication.jwt.key-file": keycloak["jwks_url"],
            "http-server.authentication.jwt.required-issuer": keycloak["issuer"],
            "http-server.authentication.jwt.required-audience": keycloak["client_id"],
            "http-server.authentication.jwt.principal-field": self.principal_field,
            "internal-communication.shared-secret": ctx.secrets["shared_secret"],
        }

    def probe(self, ctx: ServiceContext) -> bool:
        """``/v1/info`` over HTTPS, then a query as the realm's probe user (password grant)."""
        from .keycloak import PROBE_USER, password_grant

        context = ssl.create_default_context(cafile=str(ctx.ca_pem()))
        url = f"https://{HOST}:{ctx.ports['https']}"
        if not _info_ready(f"{url}/v1/info", context):
            return False
        try:
            token = password_grant(ctx.dependency("keycloak"), PROBE_USER)
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return False
        return _query_ready(url, context, {"Authorization": f"Bearer {token}"}, user=None)

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``host``, ``port`` (HTTPS), ``http_scheme``, ``ca_bundle``, ``catalog`` and
        ``auth=jupyterhub``: the only credential is the hub user's access token."""
        return {
            "host": HOST,
            "port": ctx.ports["https"],
            "http_scheme": "https",
            "ca_bundle": str(ctx.ca_pem()),
            "catalog": "iceberg",
            "auth": "jupyterhub",
        }


def _info_ready(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0, context=context) as response:  # noqa: S310
            info = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("starting") is False


def _query_ready(
    url: str,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    user: str | None = USER,
) -> bool:
    """Whether a query on the worker (``tpch.tiny.region``) runs to FINISHED (as ``user``;
    None: the authenticated principal)."""
    sent = {**({"X-Trino-User": user} if user else {}), **(headers or {})}
    request = urllib.request.Request(  # noqa: S310 - the stack's own http(s) URL
        f"{url}/v1/statement", b"SELECT count(*) FROM tpch.tiny.region", sent, method="POST"
    )
    try:
        for _ in range(100):  # a few polls; the probe is repeated anyway
            with urllib.request.urlopen(request, timeout=5.0, context=context) as response:  # noqa: S310
                document = json.load(response)
            if document.get("error") or "nextUri" not in document:
                return bool(document.get("stats", {}).get("state") == "FINISHED")
            request = urllib.request.Request(document["nextUri"], headers=sent)  # noqa: S310
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return False


# -- credentials -------------------------------------------------------------------------------


def pbkdf2_hash(password: str, iterations: int = 10_000) -> str:
    """A password-file hash Trino accepts: ``<iterations>:<salt hex>:<hash hex>``
    (Trino's file authenticator checks PBKDF2WithHmacSHA1 with the stored hash's length, and
    requires at least 1000 iterations; the stdlib makes it, so no bcrypt dependency)."""
    salt = os.urandom(16)
    derived = hashlib.pbkdf2_hmac("sha1", password.encode(), salt, iterations, dklen=64)
    return f"{iterations}:{salt.hex()}:{derived.hex()}"


def mint_jwt(key: str, subject: str = USER, ttl: float = 3600.0) -> str:
    """An HS256 token for ``subject`` signed with ``key`` (the ``jwt_key`` setting of
    ``trino_secure``), valid for ``ttl`` seconds (negative: already expired)."""

    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": subject, "iat": min(now, now + int(ttl)), "exp": now + int(ttl)}
    body = b64(json.dumps(claims).encode())
    signature = b64(hmac.new(key.encode(), header + b"." + body, hashlib.sha256).digest())
    return (header + b"." + body + b"." + signature).decode()
