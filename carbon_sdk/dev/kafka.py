"""Apache Kafka for the local stack: a single-node KRaft broker assembled from Maven Central.

The server is ``org.apache.kafka:kafka_2.13`` with its runtime dependencies (kafka-server,
storage, raft, metadata, the coordinators) plus the log4j2 SLF4J-1 binding (Kafka 4.4 still
uses slf4j-api 1.7): 45 jars, ~45 MB, resolved once by :func:`carbon_sdk.dev.maven
.resolve_dependencies` into the cache entry ``~/.cache/carbon-sdk/kafka/<version>``. One JVM
(``-Xmx512m``) is broker and controller at once; it runs on Java 17 and newer.

Listeners, all on 127.0.0.1:

``sasl`` (SASL_PLAINTEXT, SCRAM-SHA-512)
    what the SDK uses: :meth:`KafkaService.settings` gives it as ``bootstrap_servers`` with the
    SCRAM user ``carbon`` and its generated password.
``tls`` (SASL_SSL, SCRAM-SHA-512)
    the same behind TLS, with a certificate of the stack's CA (:mod:`carbon_sdk.dev.tls`); for
    TLS tests (its port is in the service's state record, ``ports["tls"]``).
``plain`` (PLAINTEXT)
    no authentication: inter-broker traffic and the readiness probe.
``controller``
    the KRaft quorum (one voter).

The storage is formatted once (``kafka.tools.StorageTool format --ignore-formatted``) with a
cluster id made here and the SCRAM credential, so no tool's stdout is ever parsed. Topics are
not auto-created: publishing to a missing topic is an error, as on the platform.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import uuid
from pathlib import Path
from typing import ClassVar

from carbon_sdk._files import write_atomic

from . import maven
from .java import find_java_home, java_version
from .ports import HOST
from .service import Service, ServiceContext

KAFKA_VERSION = "4.4.0"
LOG4J_VERSION = "2.25.2"
MIN_JAVA = 17
CACHE_ENV = "CARBON_DEV_KAFKA_CACHE"
USER = "carbon"
MECHANISM = "SCRAM-SHA-512"
HEAP = "512m"
# A short-lived tool starts twice as fast with the C1 compiler alone and the serial collector.
TOOL_FLAGS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m")
INTERNAL_PARTITIONS = 5  # __consumer_offsets and __transaction_state (default 50: slow to create)

_LOG4J2 = """\
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.err.ref = STDERR
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
"""


def artifacts() -> list[maven.Artifact]:
    """The broker and the log4j2 binding (their runtime dependencies come with them)."""
    return [
        maven.Artifact("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
        maven.Artifact("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
        maven.Artifact("org.apache.logging.log4j", "log4j-core", LOG4J_VERSION),
    ]


def java_home() -> Path:
    """A JDK new enough for Kafka (see :func:`carbon_sdk.dev.java.find_java_home`)."""
    return find_java_home(MIN_JAVA, purpose=f"Kafka {KAFKA_VERSION}")


def cache_dir() -> Path:
    """``$CARBON_DEV_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/carbon-sdk/kafka/<version>``."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser().absolute()
    return maven.cache_dir("kafka", KAFKA_VERSION)


def ensure_libs(ctx: ServiceContext, cache: Path | None = None) -> Path:
    """The directory of the broker's jars, resolved with Maven first unless cached intact."""
    wanted = artifacts()

    def build(target: Path) -> None:
        maven.resolve_dependencies(ctx, wanted, target)

    return maven.ensure_cached(ctx, cache or cache_dir(), [str(a) for a in wanted], build)


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka's ``Uuid.toString`` makes it: 16 random bytes, URL-safe
    base64 without padding, never starting with ``-`` (``StorageTool random-uuid`` without a
    JVM, and without its INFO line on stdout)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def api_versions_ok(port: int, timeout: float = 0.5) -> bool:
    """Whether a broker answers an ApiVersions request (v0) on ``port`` without error: its
    client listeners open only once it has caught up with the metadata and is unfenced."""
    client_id = b"carbon-dev-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _read_exactly(sock, 10)
    except OSError:
        return False
    if header is None:
        return False
    _size, correlation, error = struct.unpack(">iih", header)
    return bool(correlation == 7 and error == 0)


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


class KafkaService(Service):
    """A single-node Kafka broker in KRaft mode with SCRAM-SHA-512 users."""

    name = "kafka"
    ports: ClassVar[tuple[str, ...]] = ("sasl", "plain", "controller", "tls")
    main_port = "sasl"
    secrets = ("password",)
    ready_timeout = 90.0
    stop_timeout = 30.0

    def config_dir(self, ctx: ServiceContext) -> Path:
        """Where ``server.properties``, the log4j2 config and the TLS keystore are."""
        return ctx.home / "config"

    def data_dir(self, ctx: ServiceContext) -> Path:
        """The broker's ``log.dirs`` (and the KRaft metadata log)."""
        return ctx.home / "data"

    def server_properties(self, ctx: ServiceContext, keystore: Path) -> dict[str, object]:
        """The broker's configuration for the allocated ports."""
        p = ctx.ports
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.voters": f"1@{HOST}:{p['controller']}",
            "listeners": (
                f"PLAINTEXT://{HOST}:{p['plain']},CONTROLLER://{HOST}:{p['controller']},"
                f"SASL_PLAINTEXT://{HOST}:{p['sasl']},SASL_SSL://{HOST}:{p['tls']}"
            ),
            "advertised.listeners": (
                f"PLAINTEXT://{HOST}:{p['plain']},SASL_PLAINTEXT://{HOST}:{p['sasl']},"
                f"SASL_SSL://{HOST}:{p['tls']}"
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
            ),
            "sasl.enabled.mechanisms": MECHANISM,
            f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": keystore,
            "log.dirs": self.data_dir(ctx),
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": INTERNAL_PARTITIONS,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": INTERNAL_PARTITIONS,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
        }

    def prepare(self, ctx: ServiceContext) -> None:
        """Fetch the jars if needed, write the configuration and format the storage once."""
        java = java_home() / "bin" / "java"
        libs = ensure_libs(ctx)
        config = self.config_dir(ctx)
        config.mkdir(mode=0o700, parents=True, exist_ok=True)
        certificate = ctx.server_certificate(config / "tls")
        write_atomic(config / "log4j2.properties", _LOG4J2, 0o644)
        properties = config / "server.properties"
        write_atomic(properties, _properties(self.server_properties(ctx, certificate.keystore_pem)))
        if (self.data_dir(ctx) / "meta.properties").is_file():
            return  # formatted before, with the same user and password (secrets are stable)
        cluster_file = ctx.home / "cluster.id"
        if not cluster_file.is_file():
            write_atomic(cluster_file, new_cluster_id() + "\n", 0o644)
        scram = f'{MECHANISM}=[name={USER},password="{ctx.secrets["password"]}"]'
        ctx.run(
            [
                str(java),
                *self._jvm_flags(ctx),
                *TOOL_FLAGS,
                "-cp",
                str(libs / "*"),
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                "-t",
                cluster_file.read_text().strip(),
                "-c",
                str(properties),
                "--add-scram",
                scram,
            ],
            timeout=120.0,
        )

    def _jvm_flags(self, ctx: ServiceContext) -> list[str]:
        log4j = self.config_dir(ctx) / "log4j2.properties"
        return [
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
        ]

    def command(self, ctx: ServiceContext) -> list[str]:
        """``java -Xmx512m -cp 'libs/*' kafka.Kafka server.properties`` in the foreground."""
        return [
            str(java_home() / "bin" / "java"),
            f"-Xmx{HEAP}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            *self._class_data_sharing(ctx),
            *self._jvm_flags(ctx),
            "-cp",
            str(maven.content_dir(cache_dir()) / "*"),
            "kafka.Kafka",
            str(self.config_dir(ctx) / "server.properties"),
        ]

    def _class_data_sharing(self, ctx: ServiceContext) -> list[str]:
        """On Java 19+, an archive of the classes the broker loaded, written when it stops and
        mapped at the next start (kept in the service home: one writer at a time)."""
        version = java_version(java_home())
        if version is None or version < 19:
            return []
        archive = ctx.home / f"broker-java{version}.jsa"
        return ["-XX:+AutoCreateSharedArchive", f"-XX:SharedArchiveFile={archive}"]

    def probe(self, ctx: ServiceContext) -> bool:
        """The plain listener answers ApiVersions (listeners open once the broker is unfenced)."""
        return api_versions_ok(ctx.ports["plain"])

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``bootstrap_servers`` (the SASL_PLAINTEXT listener), ``security_protocol``,
        ``sasl_mechanism``, ``username`` and ``password``."""
        return {
            "bootstrap_servers": f"{HOST}:{ctx.ports['sasl']}",
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "username": USER,
            "password": ctx.secrets["password"],
        }
