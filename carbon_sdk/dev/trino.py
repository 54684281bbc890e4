"""Trino for the local stack: the official Trino server distribution, fetched once with Maven.

Two services share one cached server distribution:

``trino``
    plain HTTP, no authentication; catalogs ``iceberg`` (JDBC catalog in the stack's PostgreSQL
    database ``iceberg_catalog``, data in ``s3://warehouse/`` on the stack's SeaweedFS), ``tpch``
    and ``memory``.
``trino_secure``
    the same catalogs behind HTTPS (a self-signed CA generated for the stack) with
    ``PASSWORD,JWT`` authentication (a password file and an HS256 key file). Not started by a
    bare ``dev up``: it costs another JVM.

The distribution is ``io.trino:trino-server-core:<version>:tar.gz`` plus the plugin zips in
:data:`PLUGINS`, fetched with the machine's ``mvn`` (so its repository settings and mirrors
apply) and unpacked under ``~/.cache/carbon-sdk/trino/<version>/server``. A marker file is
written only once the whole distribution is in place, and the unpacking happens in a temporary
directory renamed at the end, so an interrupted download is never mistaken for a complete one.
Each server runs ``bin/launcher run`` in the foreground (the launcher execs the JVM in place,
so the recorded pid is the JVM), bound to 127.0.0.1 by ``node.bind-ip``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import re
import shutil
import ssl
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from .ports import HOST
from .postgres import find_bin_dir
from .service import DevStackError, Service, ServiceContext
from .state import StateDir

# 476 is the newest release whose server tarball and plugin zips are on Maven Central: since
# 477 Trino publishes releases on GitHub only, and for 483 Central has neither
# trino-server-core:tar.gz nor any plugin :zip ("Could not find artifact
# io.trino:trino-server-core:tar.gz:483 in central"). 476 runs on Java 24+.
TRINO_VERSION = "476"
MIN_JAVA = 24
PREFERRED_JAVA_HOME = Path("/usr/lib/jvm/temurin-25-jdk-amd64")
JAVA_HOME_ENV = "CARBON_DEV_JAVA_HOME"
CACHE_ENV = "CARBON_DEV_TRINO_CACHE"
PLUGINS = ("iceberg", "memory", "tpch")
USER = "carbon"
CATALOG_DATABASE = "iceberg_catalog"
WAREHOUSE = "s3://warehouse/"
HEAP = "2G"  # two servers (trino + trino_secure) fit a 2-core 24 GiB machine with room to spare

_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MARKER = "complete"
_DOWNLOAD_TIMEOUT = 1800.0
_PROGRESS_SECONDS = 0.5
_CERT_DAYS = 3650
_RENEW_BEFORE = dt.timedelta(days=30)

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


# -- Java -------------------------------------------------------------------------------------


def java_version(home: Path) -> int | None:
    """The major Java version of the JDK at ``home`` (from its ``release`` file), or None."""
    try:
        text = (home / "release").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match and (home / "bin" / "java").is_file() else None


def find_java_home() -> Path:
    """A JDK for Trino: ``$CARBON_DEV_JAVA_HOME``, else Temurin 25 at its Debian path, else
    ``$JAVA_HOME``, else the newest JDK >= :data:`MIN_JAVA` under ``/usr/lib/jvm``."""
    if explicit := os.environ.get(JAVA_HOME_ENV):
        home = Path(explicit)
        version = java_version(home)
        if version is None or version < MIN_JAVA:
            raise DevStackError(
                f"{JAVA_HOME_ENV}={explicit} is not a JDK {MIN_JAVA} or newer"
                f" (found: {version or 'no release file or bin/java'})."
            )
        return home
    candidates = [PREFERRED_JAVA_HOME]
    if env_home := os.environ.get("JAVA_HOME"):
        candidates.append(Path(env_home))
    installed = [(java_version(p), p) for p in sorted(Path("/usr/lib/jvm").glob("*"))]
    candidates += [p for v, p in sorted(installed, key=lambda vp: -(vp[0] or 0)) if v]
    for home in candidates:
        version = java_version(home)
        if version is not None and version >= MIN_JAVA:
            return home
    raise DevStackError(
        f"Trino {TRINO_VERSION} needs Java {MIN_JAVA} or newer; none found (checked"
        f" {PREFERRED_JAVA_HOME}, $JAVA_HOME and /usr/lib/jvm/*). Install a JDK 25, e.g. Eclipse"
        f" Temurin 25 (https://adoptium.net, package temurin-25-jdk), or set {JAVA_HOME_ENV}."
    )


# -- the server distribution -----------------------------------------------------------------


def cache_dir() -> Path:
    """``$CARBON_DEV_TRINO_CACHE``, else ``$XDG_CACHE_HOME/carbon-sdk/trino/<version>``."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "carbon-sdk" / "trino" / TRINO_VERSION


def _artifacts() -> list[tuple[str, str]]:
    """``(artifactId, extension)`` of everything the server needs, core tarball first."""
    return [("trino-server-core", "tar.gz"), *((f"trino-{p}", "zip") for p in PLUGINS)]


def is_cached(cache: Path | None = None) -> bool:
    """Whether the complete server distribution is in the cache."""
    root = cache or cache_dir()
    return (root / _MARKER).is_file() and (root / "server" / "bin" / "launcher").is_file()


def ensure_server(ctx: ServiceContext, cache: Path | None = None) -> Path:
    """The unpacked server directory, downloading and unpacking it first if the cache is not
    complete. Safe to call from several services at once (a lock file serializes them)."""
    root = cache or cache_dir()
    if is_cached(root):
        return root / "server"
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / ".lock"):
        if is_cached(root):  # another service finished it while we waited
            return root / "server"
        for stale in root.glob(".download-*"):
            shutil.rmtree(stale, ignore_errors=True)
        work = Path(tempfile.mkdtemp(dir=root, prefix=".download-"))
        try:
            server = _download_and_unpack(ctx, work)
            (root / _MARKER).unlink(missing_ok=True)
            shutil.rmtree(root / "server", ignore_errors=True)
            server.rename(root / "server")
            artifacts = [f"io.trino:{a}:{TRINO_VERSION}:{ext}" for a, ext in _artifacts()]
            (root / _MARKER).write_text("\n".join(artifacts) + "\n")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return root / "server"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download_and_unpack(ctx: ServiceContext, work: Path) -> Path:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise DevStackError(
            "Trino is fetched with Maven, but `mvn` is not on PATH. Install it (Debian package"
            " `maven`: apt-get install maven)."
        )
    downloads, server = work / "dl", work / "server"
    downloads.mkdir()
    done = 0
    for artifact, ext in _artifacts():
        coordinate = f"io.trino:{artifact}:{TRINO_VERSION}:{ext}"
        with _report_growth(ctx, done, _local_repo_dir(artifact), downloads):
            ctx.run(
                [
                    mvn,
                    "-B",
                    "-q",
                    "-U",
                    "-Dstyle.color=never",
                    f"{_DEPENDENCY_PLUGIN}:copy",
                    f"-Dartifact={coordinate}",
                    f"-DoutputDirectory={downloads}",
                ],
                cwd=work,
                timeout=_DOWNLOAD_TIMEOUT,
            )
        archive = downloads / f"{artifact}-{TRINO_VERSION}.{ext}"
        if not archive.is_file():
            raise DevStackError(f"{ctx.name}: mvn did not produce {archive.name} ({coordinate})")
        done += archive.stat().st_size
        ctx.downloading(done, None)
        if ext == "tar.gz":
            with tarfile.open(archive) as tar:
                tar.extractall(work, filter="data")
            (work / f"{artifact}-{TRINO_VERSION}").rename(server)
        else:
            plugin_dir = server / "plugin"
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(plugin_dir)  # noqa: S202 - zipfile drops '..' and '/'
            name = artifact.removeprefix("trino-")
            shutil.rmtree(plugin_dir / name, ignore_errors=True)
            (plugin_dir / f"{artifact}-{TRINO_VERSION}").rename(plugin_dir / name)
        archive.unlink()
    launcher = server / "bin" / "launcher"
    if not launcher.is_file():
        raise DevStackError(f"{ctx.name}: the Trino server tarball has no bin/launcher")
    return server


def _local_repo_dir(artifact: str) -> Path:
    """Where Maven's default local repository keeps ``artifact`` (progress while it downloads)."""
    return Path.home() / ".m2" / "repository" / "io" / "trino" / artifact / TRINO_VERSION


def _tree_size(path: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for entry in path.rglob("*"):
            with contextlib.suppress(OSError):
                total += entry.stat().st_size if entry.is_file() else 0
    return total


@contextlib.contextmanager
def _report_growth(ctx: ServiceContext, base: int, repo: Path, out: Path) -> Iterator[None]:
    """While the body runs, report ``base`` plus the bytes Maven has written so far: the growth
    of its local repository directory (a real download) or of the output directory (a copy)."""
    before = _tree_size(repo)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(_PROGRESS_SECONDS):
            grown = max(_tree_size(repo) - before, _tree_size(out))
            ctx.downloading(base + grown, None)

    watcher = threading.Thread(target=watch, name=f"{ctx.name}-download", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


# -- configuration ---------------------------------------------------------------------------


def dependency_settings(ctx: ServiceContext, service: str) -> dict[str, object]:
    """The recorded settings of another service of the same stack (a ready dependency)."""
    record = StateDir(ctx.home.parent).load(service)
    if record is None or not record.settings:
        raise DevStackError(f"{ctx.name} needs {service} running first (`carbon-sdk dev up`)")
    return record.settings


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(mode)


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
    depends_on = ("postgres", "s3")
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
        find_java_home()  # fail before a 570 MB download if Trino could not run anyway
        ensure_server(ctx)
        pg, s3 = dependency_settings(ctx, "postgres"), dependency_settings(ctx, "s3")
        _create_catalog_tables(ctx, pg)
        etc = self.etc_dir(ctx)
        shutil.rmtree(etc / "catalog", ignore_errors=True)
        self.data_dir(ctx).mkdir(exist_ok=True)
        _write(
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
        )
        _write(etc / "jvm.config", _JVM_CONFIG)
        _write(etc / "log.properties", "io.trino=INFO\n")
        http = ctx.ports["http"]
        config: dict[str, object] = {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": http,
            "discovery.uri": f"http://{HOST}:{http}",
        }
        config.update(self.extra_config(ctx))
        _write(etc / "config.properties", _properties(config), 0o600)
        for catalog, values in _catalogs(pg, s3).items():
            _write(etc / "catalog" / f"{catalog}.properties", _properties(values), 0o600)

    def extra_config(self, ctx: ServiceContext) -> dict[str, object]:
        """More ``config.properties`` entries (and files they point to) for subclasses."""
        return {}

    def command(self, ctx: ServiceContext) -> list[str]:
        """``bin/launcher run`` in the foreground; the launcher execs the JVM in place."""
        launcher = ensure_server(ctx) / "bin" / "launcher"
        return [
            str(launcher),
            "run",
            f"--etc-dir={self.etc_dir(ctx)}",
            f"--data-dir={self.data_dir(ctx)}",
        ]

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """``JAVA_HOME`` of a JDK new enough for Trino (the launcher runs its ``bin/java``)."""
        return {"JAVA_HOME": str(find_java_home())}

    def probe(self, ctx: ServiceContext) -> bool:
        """``GET /v1/info`` answers with ``"starting": false``."""
        return _info_ready(f"http://{HOST}:{ctx.ports['http']}/v1/info")

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

    The CA and server certificate are generated once per stack (renewed when near expiry);
    the password (PBKDF2 in Trino's password file) and the HS256 JWT signing key come from
    the stack's generated secrets. Plain HTTP stays on for Trino's internal traffic, but refuses
    authenticated requests.
    """

    name = "trino_secure"
    ports = ("http", "https")
    main_port = "https"
    secrets = ("password", "jwt_key", "shared_secret")
    default = False  # another JVM (~1 GB, ~20 s): only when asked for

    def tls_dir(self, ctx: ServiceContext) -> Path:
        """Where the CA, keystore, password file and JWT key live (mode 0700)."""
        return ctx.home / "tls"

    def extra_config(self, ctx: ServiceContext) -> dict[str, object]:
        """HTTPS, the file password authenticator and the JWT key; writes their files."""
        tls = self.tls_dir(ctx)
        tls.mkdir(mode=0o700, exist_ok=True)
        _ensure_certificates(tls)
        _write(tls / "password.db", f"{USER}:{pbkdf2_hash(ctx.secrets['password'])}\n", 0o600)
        key = base64.b64encode(ctx.secrets["jwt_key"].encode()).decode()
        _write(tls / "jwt.key", key + "\n", 0o600)
        _write(
            self.etc_dir(ctx) / "password-authenticator.properties",
            _properties(
                {"password-authenticator.name": "file", "file.password-file": tls / "password.db"}
            ),
        )
        return {
            "http-server.https.enabled": "true",
            "http-server.https.port": ctx.ports["https"],
            "http-server.https.keystore.path": tls / "server.pem",
            "http-server.authentication.type": "PASSWORD,JWT",
            "http-server.authentication.jwt.key-file": tls / "jwt.key",
            "internal-communication.shared-secret": ctx.secrets["shared_secret"],
        }

    def probe(self, ctx: ServiceContext) -> bool:
        """``GET /v1/info`` over HTTPS (verified with the stack's CA) says it is not starting."""
        context = ssl.create_default_context(cafile=str(self.tls_dir(ctx) / "ca.pem"))
        return _info_ready(f"https://{HOST}:{ctx.ports['https']}/v1/info", context)

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """What a client needs: ``host``, ``port`` (HTTPS), ``http_scheme``, ``ca_bundle``,
        ``user``, ``password``, ``catalog``, and ``jwt_key`` (the HS256 signing key, used as its
        UTF-8 bytes; see :func:`mint_jwt`) with ``jwt_key_file`` (Trino's base64 copy of it)."""
        tls = self.tls_dir(ctx)
        return {
            "host": HOST,
            "port": ctx.ports["https"],
            "http_scheme": "https",
            "ca_bundle": str(tls / "ca.pem"),
            "user": USER,
            "password": ctx.secrets["password"],
            "catalog": "iceberg",
            "jwt_key": ctx.secrets["jwt_key"],
            "jwt_key_file": str(tls / "jwt.key"),
        }


def _info_ready(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0, context=context) as response:  # noqa: S310
            info = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("starting") is False


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


def _ensure_certificates(tls: Path) -> None:
    """Write ``ca.pem`` and ``server.pem`` (PKCS#8 key + leaf + CA) unless valid ones exist."""
    from cryptography import x509

    ca_pem, keystore = tls / "ca.pem", tls / "server.pem"
    if ca_pem.is_file() and keystore.is_file():
        leaf = x509.load_pem_x509_certificate(keystore.read_bytes())
        if leaf.not_valid_after_utc - dt.datetime.now(dt.UTC) > _RENEW_BEFORE:
            return
    ca, leaf_pem = _make_certificates()
    _write(keystore, leaf_pem, 0o600)
    _write(ca_pem, ca)


def _make_certificates() -> tuple[str, str]:
    """A new CA (PEM) and the server keystore: key + leaf for localhost/127.0.0.1 + CA."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    start, end = now - dt.timedelta(minutes=5), now + dt.timedelta(days=_CERT_DAYS)

    def usage(*, cert_sign: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=not cert_sign,
            key_cert_sign=cert_sign,
            crl_sign=cert_sign,
            encipher_only=False,
            decipher_only=False,
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carbon-sdk dev CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def pem(cert: x509.Certificate) -> str:
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem(ca), private + pem(leaf) + pem(ca)
