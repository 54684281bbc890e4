"""Kafka: settings, configured confluent-kafka clients, publishing and inspecting topics, and the
doctor check.

Every client is configured by one function, :meth:`KafkaSettings.client_config`: bootstrap
servers, the security protocol, SASL (SCRAM) credentials from the secrets, the CA bundle,
``client.id`` carrying the JupyterHub user and timeouts for interactive use. The helpers
(:func:`publish`, :func:`tail`, :func:`topics`, :func:`lag`, :func:`check`) listen on
librdkafka's ``error_cb``: a metadata request with a wrong password only times out with
``_TRANSPORT``, while the callback names the cause (``_AUTHENTICATION``, ``_SSL``...), so the
errors they raise say what went wrong.
"""

from __future__ import annotations

import getpass
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, SecretStr, field_validator

from carbon_sdk._classify import ErrorTable, Rule, fix_for
from carbon_sdk._lazy import import_client
from carbon_sdk._log import client_created, logger
from carbon_sdk._progress import counted, progress_bar
from carbon_sdk._redact import redact
from carbon_sdk._tables import TableFormat, check_format, convert
from carbon_sdk.errors import (
    AuthFailed,
    CarbonError,
    ConfigurationError,
    NotFound,
    ServiceError,
    TLSError,
    Unreachable,
)
from carbon_sdk.settings import ServiceSettings
from carbon_sdk.settings.values import host_port_list

if TYPE_CHECKING:
    import pyarrow as pa
    from confluent_kafka import Consumer, KafkaError, Producer
    from confluent_kafka.admin import AdminClient

SERVICE = "kafka"
Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
Serializer = Literal["json", "str", "bytes"] | Callable[[Any], "bytes | str"]
Deserializer = Literal["str", "json", "bytes"]
Role = Literal["producer", "consumer", "admin"]
# librdkafka settings given as Python callables, whose names are not property names.
_CALLBACKS = frozenset(
    {"error_cb", "throttle_cb", "stats_cb", "oauth_cb", "logger", "on_delivery", "on_commit"}
)
_AUTH_FIX = "check kafka.username, kafka.password and kafka.sasl_mechanism"


class KafkaSettings(ServiceSettings):
    """Where the platform's Kafka is and how to log in (SASL SCRAM over TLS on the platform)."""

    service: ClassVar[str] = SERVICE
    required: ClassVar[tuple[str, ...]] = ("bootstrap_servers",)
    endpoint_fields: ClassVar[tuple[str, ...]] = ("bootstrap_servers",)
    env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {
        "bootstrap_servers": ("KAFKA_BOOTSTRAP_SERVERS",),
    }

    bootstrap_servers: str | None = Field(
        None, description="Comma-separated host:port list of brokers to bootstrap from."
    )
    security_protocol: Protocol | None = Field(
        None,
        description=(
            "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (default: SASL_SSL when a username "
            "is set, else PLAINTEXT)."
        ),
    )
    sasl_mechanism: Mechanism = Field(
        "SCRAM-SHA-512", description="SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN."
    )
    username: str | None = Field(None, description="SASL user name.")
    password: SecretStr | None = Field(None, description="SASL password of the user.")
    client_id: str | None = Field(
        None, description="client.id shown in broker logs and quotas (default: carbon-sdk-<user>)."
    )
    group_id: str | None = Field(
        None, description="Default consumer group (default: <JupyterHub user>-notebook)."
    )
    request_timeout: float = Field(
        30.0,
        gt=0,
        le=86400,
        allow_inf_nan=False,
        description="Seconds to wait for one broker request (socket/request.timeout.ms).",
    )
    delivery_timeout: float = Field(
        60.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="Seconds a produced message may take to be acknowledged (message.timeout.ms).",
    )
    properties: dict[str, str] = Field(
        default_factory=dict,
        description="More librdkafka properties for every client, e.g. {'linger.ms': '20'}.",
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _valid_servers(cls, servers: str | None) -> str | None:
        return host_port_list(servers) if servers else servers

    @property
    def protocol(self) -> Protocol:
        """The security protocol in force (see ``security_protocol``)."""
        if self.security_protocol:
            return self.security_protocol
        return "SASL_SSL" if self.username else "PLAINTEXT"

    @property
    def endpoint(self) -> str:
        """``<protocol>://<bootstrap servers>``, without credentials."""
        return f"{self.protocol.lower()}://{self.bootstrap_servers}"

    def user(self) -> str:
        """Who the clients act for: ``JUPYTERHUB_USER``, else the OS user."""
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()

    def default_client_id(self) -> str:
        """``client_id``, else ``carbon-sdk-<user>``."""
        return self.client_id or f"carbon-sdk-{self.user()}"

    def default_group_id(self) -> str:
        """``group_id``, else ``<user>-notebook``."""
        return self.group_id or f"{self.user()}-notebook"

    def client_config(self, role: Role) -> dict[str, Any]:
        """The librdkafka configuration of a ``role`` client; contains the password: never show
        it. ``properties`` are applied last."""
        self.require()
        protocol = self.protocol
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": protocol.lower(),
            "client.id": self.default_client_id(),
            "socket.connection.setup.timeout.ms": round(self.connect_timeout * 1000),
            "socket.timeout.ms": max(10, round(self.request_timeout * 1000)),
        }
        if protocol.startswith("SASL"):
            self.require("username", "password")
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.username
            config["sasl.password"] = self.secret("password")
        if protocol.endswith("SSL"):
            if self.ca_bundle and self.verify:
                config["ssl.ca.location"] = str(self.ca_bundle)
            if not self.verify:
                config["enable.ssl.certificate.verification"] = False
                config["ssl.endpoint.identification.algorithm"] = "none"
        if role == "producer":
            delivery = round(self.delivery_timeout * 1000)
            config["message.timeout.ms"] = delivery
            config["request.timeout.ms"] = min(delivery, round(self.request_timeout * 1000))
        elif role == "consumer":
            config["group.id"] = self.default_group_id()
            config["auto.offset.reset"] = "earliest"
        config.update(self.properties)
        return config


Settings = KafkaSettings

# ---- errors ---------------------------------------------------------------------------------

ERRORS = ErrorTable(
    Rule(
        AuthFailed,
        _AUTH_FIX,
        codes=("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "ILLEGAL_SASL_STATE"),
        text=("authentication failed", "invalid credentials"),
    ),
    Rule(
        AuthFailed,
        "the user lacks an ACL for this; ask the platform team",
        codes=("TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION"),
    ),
    Rule(
        TLSError,
        "check kafka.security_protocol and kafka.ca_bundle",
        codes=("_SSL",),
        text=("ssl handshake", "certificate verify failed"),
    ),
    Rule(
        NotFound,
        "check the topic name (kafka.topics() lists them)",
        codes=("UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION"),
    ),
    Rule(
        Unreachable,
        "is it running? check kafka.bootstrap_servers and kafka.security_protocol",
        codes=(
            "_RESOLVE",
            "_TRANSPORT",
            "_ALL_BROKERS_DOWN",
            "_TIMED_OUT",
            "_MSG_TIMED_OUT",
            "NETWORK_EXCEPTION",
            "REQUEST_TIMED_OUT",
        ),
        text=("connection refused", "failed to resolve", "timed out"),
    ),
)
# Errors that name the cause better than the timeout a request ends with, most telling first.
_DECISIVE = (
    "_AUTHENTICATION",
    "SASL_AUTHENTICATION_FAILED",
    "_SSL",
    "_RESOLVE",
    "_ALL_BROKERS_DOWN",
)
# Errors that are the user's to fix, not the records': raised as themselves by publish.
_CREDENTIALS = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL")
# Errors of a broker that is (re)starting or moving leadership: retried until the deadline.
_TRANSIENT = (
    "NOT_LEADER_FOR_PARTITION",
    "LEADER_NOT_AVAILABLE",
    "NOT_COORDINATOR",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
    "_TRANSPORT",
    "_TIMED_OUT",
    "REQUEST_TIMED_OUT",
    "UNKNOWN_LEADER_EPOCH",
    "FENCED_LEADER_EPOCH",
    "_WAIT_COORD",
)


class DeliveryFailed(ServiceError):
    """Some records of a :func:`publish` were not acknowledged by the brokers.

    Attributes:
        delivered: how many records were acknowledged.
        failed: ``(key, error name, error message)`` of each failed record (at most 1000).
        failed_count: how many records failed to be delivered.
        not_sent: how many records were not handed to the client at all (the publish stopped
            after the first failures, or the flush deadline passed with these outstanding).
    """

    def __init__(
        self,
        endpoint: str,
        message: str,
        *,
        delivered: int,
        failed: list[tuple[bytes | None, str, str]],
        failed_count: int,
        not_sent: int,
    ) -> None:
        super().__init__(SERVICE, endpoint, message)
        self.delivered = delivered
        self.failed = failed
        self.failed_count = failed_count
        self.not_sent = not_sent


class _Seen:
    """An ``error_cb`` that keeps the client's recent errors (a bounded list), thread-safe."""

    def __init__(self, limit: int = 50) -> None:
        self.errors: list[KafkaError] = []
        self._limit = limit
        self._lock = threading.Lock()

    def __call__(self, error: KafkaError) -> None:
        with self._lock:
            self.errors.append(error)
            del self.errors[: -self._limit]
        logger(SERVICE).debug("librdkafka error: %s", error.str())

    def decisive(self) -> KafkaError | None:
        """The error that names the cause best (authentication, TLS, name resolution, every
        broker down: see ``_DECISIVE``), or None."""
        with self._lock:
            errors = list(self.errors)
        for name in _DECISIVE:
            for error in errors:
                if _code(error) == name:
                    if name == "_ALL_BROKERS_DOWN":  # the transport error says why
                        return next((e for e in errors if e.name() == "_TRANSPORT"), error)
                    return error
        return None

    def last(self) -> KafkaError | None:
        with self._lock:
            return self.errors[-1] if self.errors else None


def classify(
    error: BaseException | KafkaError,
    settings: KafkaSettings,
    seen: _Seen | None = None,
    *,
    what: str = "",
) -> CarbonError:
    """Turn a confluent-kafka error (a ``KafkaException`` or a ``KafkaError``) into the
    carbon-sdk error saying what went wrong, by error code (see :data:`ERRORS`); an error seen by
    ``error_cb`` that names a cause (``_AUTHENTICATION``, ``_SSL``...) wins over the timeout the
    request itself ended with. No secret appears in the message."""
    kafka_error = _kafka_error(error)
    decisive = seen.decisive() if seen else None
    if decisive is not None:
        kafka_error = decisive
    elif kafka_error is None or kafka_error.name() in ("_TRANSPORT", "_TIMED_OUT"):
        kafka_error = (seen.last() if seen else None) or kafka_error
    if kafka_error is None:
        name, text = "", str(error) or type(error).__name__
    else:
        name, text = _code(kafka_error), kafka_error.str()
    text = redact(text, settings.secret_values())
    prefix = f"{what}: " if what else ""
    detail = f"{prefix}{text} ({name})" if name else f"{prefix}{text}"
    exc = error if isinstance(error, BaseException) else RuntimeError(text)
    rule = ERRORS.match(exc, name) if name else ERRORS.match(exc)
    if rule is None:
        return ServiceError(SERVICE, settings.endpoint, detail)
    error_cls = cast("type[ServiceError]", rule.error)
    return error_cls(SERVICE, settings.endpoint, f"{detail}; {fix_for(rule, settings, text)}")


def _code(error: KafkaError) -> str:
    """The error's name, with a TLS handshake failure reported as a transport error (TLS
    spoken to a plain listener) counted as ``_SSL``."""
    name = str(error.name())
    if name == "_TRANSPORT" and "ssl handshake failed" in str(error.str()).lower():
        return "_SSL"
    return name


def _kafka_error(error: BaseException | KafkaError) -> KafkaError | None:
    if isinstance(error, BaseException):
        first = error.args[0] if error.args else None
        return first if hasattr(first, "name") and hasattr(first, "str") else None
    return error


# ---- clients --------------------------------------------------------------------------------


def _split(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(settings overrides, librdkafka properties)``: names of settings fields go to the
    settings; callbacks (``error_cb``...) and dotted names pass as they are; other names are
    librdkafka properties written with underscores (``linger_ms`` is ``linger.ms``)."""
    fields = KafkaSettings.model_fields
    settings: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, value in overrides.items():
        if name in fields:
            settings[name] = value
        elif name in _CALLBACKS or "." in name:
            properties[name] = value
        else:
            properties[name.replace("_", ".")] = value
    return settings, properties


def _config(settings: KafkaSettings, role: Role, properties: Mapping[str, Any]) -> dict[str, Any]:
    config = settings.client_config(role)
    config.update(properties)
    return config


def _new(settings: KafkaSettings, role: Role, config: dict[str, Any]) -> Any:
    ck = import_client("confluent_kafka", SERVICE)
    admin = import_client("confluent_kafka.admin", SERVICE) if role == "admin" else None
    client_created(settings, f"confluent_kafka {role}")
    factory = {"producer": ck.Producer, "consumer": ck.Consumer}.get(role) or admin.AdminClient  # type: ignore[union-attr]
    try:
        return factory(config)
    except (ck.KafkaException, ValueError, TypeError) as exc:
        message = redact(str(exc), settings.secret_values())
        raise ConfigurationError(f"kafka at {settings.endpoint}: {message}") from None


def producer(**overrides: Any) -> Producer:
    """A ``confluent_kafka.Producer`` configured from the settings.

    ``overrides`` are settings (``producer(delivery_timeout=5)``) or librdkafka properties,
    dotted or with underscores: ``producer(linger_ms=20, transactional_id="loader-1")``."""
    fields, properties = _split(overrides)
    settings = KafkaSettings.load(**fields)
    client: Producer = _new(settings, "producer", _config(settings, "producer", properties))
    return client


def consumer(
    topics: str | Iterable[str] | None = None, group_id: str | None = None, **overrides: Any
) -> Consumer:
    """A ``confluent_kafka.Consumer`` in group ``group_id`` (default ``<user>-notebook``),
    subscribed to ``topics`` (none: subscribe or assign yourself). Reads from the earliest
    offset when the group has no committed one; ``overrides`` as for :func:`producer`."""
    fields, properties = _split(overrides)
    settings = KafkaSettings.load(**fields)
    config = _config(settings, "consumer", properties)
    if group_id is not None:
        config["group.id"] = group_id
    client: Consumer = _new(settings, "consumer", config)
    if topics:
        client.subscribe([topics] if isinstance(topics, str) else list(topics))
    return client


def admin(**overrides: Any) -> AdminClient:
    """A ``confluent_kafka.admin.AdminClient`` (create topics, describe groups, ...)."""
    fields, properties = _split(overrides)
    settings = KafkaSettings.load(**fields)
    client: AdminClient = _new(settings, "admin", _config(settings, "admin", properties))
    return client


class _LibrdkafkaLog:
    """librdkafka's log lines (each reconnect attempt logs at error level) as DEBUG lines of
    ``carbon_sdk.kafka``: the helpers raise the classified error instead."""

    def log(self, level: int, message: str, *args: Any) -> None:
        logger(SERVICE).debug("librdkafka: " + message, *args)


def _helper_client(
    settings: KafkaSettings, role: Role, properties: Mapping[str, Any] | None = None
) -> tuple[Any, _Seen]:
    """A client for the helpers: its errors recorded, librdkafka's log lines in our logger."""
    seen = _Seen()
    config = _config(settings, role, properties or {})
    config.setdefault("error_cb", seen)
    config.setdefault("logger", _LibrdkafkaLog())
    config.setdefault("log.connection.close", False)
    return _new(settings, role, config), seen


_METADATA_FIRST_WAIT = 0.1  # seconds; see _metadata


def _metadata(
    client: Any, settings: KafkaSettings, seen: _Seen, topic: str | None, deadline: float
) -> Any:
    """Cluster (or one topic's) metadata; raises as soon as ``error_cb`` names a cause, or the
    classified error once ``deadline`` (a ``time.monotonic()``) passes.

    ``list_topics`` blocks for its whole timeout when no broker answers, and ``error_cb`` is
    served only between calls, so the waits start short (a refused port fails in about 0.1 s)
    and double (a broker whose metadata answer takes longer is still waited for)."""
    ck = import_client("confluent_kafka", SERVICE)
    wait = _METADATA_FIRST_WAIT
    while True:
        remaining = deadline - time.monotonic()
        try:
            return client.list_topics(topic, timeout=max(0.05, min(wait, remaining)))
        except ck.KafkaException as exc:
            client.poll(0)  # serves error_cb
            if seen.decisive() is not None or time.monotonic() >= deadline:
                raise classify(exc, settings, seen, what="metadata request") from None
        wait *= 2


def _topic_partitions(
    client: Any, settings: KafkaSettings, seen: _Seen, topic: str, deadline: float
) -> list[int]:
    """The partition ids of ``topic``; NotFound if it does not exist."""
    ck = import_client("confluent_kafka", SERVICE)
    while True:
        meta = _metadata(client, settings, seen, topic, deadline).topics.get(topic)
        error = meta.error if meta is not None else None
        if error is None and meta is not None and meta.partitions:
            return sorted(meta.partitions)
        if error is not None and error.code() == ck.KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise NotFound(
                SERVICE,
                settings.endpoint,
                f"topic {topic!r} does not exist (UNKNOWN_TOPIC_OR_PART)",
            )
        if time.monotonic() >= deadline:
            raise classify(error or RuntimeError("no partitions"), settings, seen, what=topic)
        time.sleep(0.05)  # leader election after a restart: the metadata is being updated


# ---- publish ----------------------------------------------------------------------------------


def _encoder(serializer: Serializer) -> Callable[[Any], bytes | str]:
    if callable(serializer):
        return serializer
    if serializer == "json":
        return lambda record: json.dumps(record, default=str).encode()
    if serializer == "str":
        return lambda record: str(record).encode()
    if serializer == "bytes":
        return _as_bytes
    raise ValueError(f"serializer={serializer!r}; use 'json', 'str', 'bytes' or a function")


def _as_bytes(value: Any) -> bytes | str:
    if isinstance(value, bytes | str):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"serializer='bytes' needs bytes or str values, got {type(value).__name__}")


def _key_of(key: str | Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    if key is None:
        return None
    if callable(key):
        return lambda record: _key_bytes(key(record))
    return lambda record: _key_bytes(record[key])


def _key_bytes(value: Any) -> bytes | str | None:
    if value is None or isinstance(value, bytes | str):
        return value
    return str(value)


def _frame_module(data: Any) -> str | None:
    module = type(data).__module__.split(".")[0]
    return module if module in ("pandas", "polars", "pyarrow") else None


def _frame_messages(
    data: Any,
    key: str | Callable[[Any], Any] | None,
    headers: Any,
    serializer: Serializer,
) -> tuple[Iterable[Any], Iterable[Any] | None, Iterable[Any] | None]:
    """``(values, keys, headers)`` of a DataFrame/Arrow table: JSON rows made by pandas' or
    polars' vectorised writer (one line per row), a key column as text."""
    module = _frame_module(data)
    if module == "pyarrow":
        data = data.to_pandas()
        module = "pandas"
    rows: list[dict[str, Any]] | None = None

    def records() -> list[dict[str, Any]]:
        nonlocal rows
        if rows is None:
            rows = data.to_dicts() if module == "polars" else data.to_dict("records")
        return rows

    if serializer == "json":
        if module == "polars":
            text = data.write_ndjson()
        else:
            text = data.to_json(orient="records", lines=True, date_format="iso")
        values: Iterable[Any] = text.rstrip("\n").split("\n") if len(data) else []
    elif callable(serializer):
        values = map(serializer, records())
    else:
        columns = list(data.columns)
        if len(columns) != 1:
            raise ValueError(
                f"serializer={serializer!r} sends one column; this frame has {len(columns)}"
                " (use serializer='json' or a function of the row)"
            )
        values = map(_encoder(serializer), data[columns[0]].to_list())
    keys: Iterable[Any] | None = None
    if isinstance(key, str):
        if key not in data.columns:
            raise ValueError(f"key={key!r} is not a column of the frame")
        keys = [_key_bytes(v) for v in data[key].to_list()]
    elif key is not None:
        keys = map(_key_of(key), records())  # type: ignore[arg-type]
    header_list = map(headers, records()) if callable(headers) else None
    return values, keys, header_list


def _messages(
    records: Any,
    key: str | Callable[[Any], Any] | None,
    headers: Mapping[str, Any] | Callable[[Any], Any] | None,
    serializer: Serializer,
) -> Iterator[tuple[Any, Any, Any]]:
    """``(value, key, headers)`` of every record, encoded lazily (a failing record stops the
    publish there)."""
    fixed_headers = None if callable(headers) or headers is None else list(headers.items())
    if _frame_module(records):
        values, keys, per_row = _frame_messages(records, key, headers, serializer)
        keys_iter = iter(keys) if keys is not None else None
        headers_iter = iter(per_row) if per_row is not None else None
        for value in values:
            yield (
                value,
                next(keys_iter) if keys_iter else None,
                next(headers_iter) if headers_iter else fixed_headers,
            )
        return
    if isinstance(records, dict | str | bytes):
        raise TypeError("publish() takes an iterable of records or a DataFrame; wrap one in [...]")
    encode = _encoder(serializer)
    key_of = _key_of(key)
    for record in records:
        yield (
            encode(record),
            key_of(record) if key_of else None,
            headers(record) if callable(headers) else fixed_headers,
        )


def _values(records: Any, serializer: Serializer) -> Iterable[Any]:
    """The encoded values alone (no keys, no headers): the fast path of :func:`publish`; bytes
    and str go to the client as they are (it checks their type)."""
    if _frame_module(records):
        return _frame_messages(records, None, None, serializer)[0]
    if serializer == "bytes":
        return cast("Iterable[Any]", records)
    return map(_encoder(serializer), records)


def publish(
    topic: str,
    records: Any,
    *,
    key: str | Callable[[Any], Any] | None = None,
    headers: Mapping[str, str | bytes] | Callable[[Any], Any] | None = None,
    serializer: Serializer = "json",
    transactional: bool = False,
    progress: bool | None = None,
    **overrides: Any,
) -> int:
    """Send ``records`` to ``topic`` and wait until the brokers acknowledged every one; returns
    how many were delivered.

    ``records``: an iterable of records (dicts, values) or a pandas/polars DataFrame or Arrow
    table (one message per row). ``serializer``: ``"json"`` (a DataFrame row as a JSON object),
    ``"str"``, ``"bytes"`` (bytes or str as they are) or a function of the record. ``key``: a
    field/column name or a function of the record. ``headers``: a mapping sent with every
    record, or a function of the record returning one. ``transactional=True``: all records or
    none (read_committed consumers see none of an aborted publish). ``progress``: a bar of the
    messages handed to the client (default: only in notebooks and terminals).

    Raises NotFound for a missing topic (before sending anything) and :class:`DeliveryFailed`
    naming the failed records' errors; the wait is bounded by ``delivery_timeout``.
    """
    if isinstance(records, dict | str | bytes):
        raise TypeError("publish() takes an iterable of records or a DataFrame; wrap one in [...]")
    _encoder(serializer)  # an unknown serializer fails before connecting
    fields, properties = _split(overrides)
    settings = KafkaSettings.load(**fields)
    failures: list[Any] = []
    properties = {
        **properties,
        "delivery.report.only.error": True,
        "on_delivery": _collect(failures),
    }
    if transactional:
        properties.setdefault(
            "transactional.id", f"{settings.default_client_id()}-{uuid.uuid4().hex[:12]}"
        )
    client, seen = _helper_client(settings, "producer", properties)
    deadline = time.monotonic() + settings.connect_timeout + settings.request_timeout
    _topic_partitions(client, settings, seen, topic, deadline)
    ck = import_client("confluent_kafka", SERVICE)
    if transactional:
        _begin(client, settings, seen)
    total = len(records) if hasattr(records, "__len__") else None
    bar = progress_bar(total, f"publish {topic}", extra=SERVICE, enabled=progress, unit="msg")
    try:
        with bar as update:
            if key is None and headers is None:
                messages: Iterable[Any] = counted(_values(records, serializer), update)
                sent, stopped = _produce_values(client, topic, messages, failures)
            else:
                messages = counted(_messages(records, key, headers, serializer), update)
                sent, stopped = _produce_all(client, topic, messages, failures)
    except BaseException:
        if transactional:
            _abort(client)
        else:
            client.flush(settings.delivery_timeout)
        raise
    outstanding = client.flush(settings.delivery_timeout + settings.request_timeout)
    if transactional and not failures and not outstanding:
        try:
            client.commit_transaction(settings.request_timeout)
        except ck.KafkaException as exc:
            _abort(client)
            raise classify(exc, settings, seen, what="committing the transaction") from None
    elif transactional:
        _abort(client)
    if failures or outstanding or stopped:
        raise _delivery_failed(
            settings,
            seen,
            topic,
            sent=sent,
            failures=failures,
            outstanding=outstanding,
            records=records,
        )
    return sent


def _produce_all(
    client: Any, topic: str, messages: Iterable[tuple[Any, Any, Any]], failures: list[Any]
) -> tuple[int, bool]:
    """Hand every message to the client; ``(sent, stopped)``. When the local queue is full,
    delivery reports are served; if some failed by then, the rest is not sent (``stopped``)."""
    sent = 0
    produce, poll = client.produce, client.poll
    for value, message_key, message_headers in messages:
        while True:
            try:
                produce(topic, value, message_key, headers=message_headers)
                break
            except BufferError:
                poll(0.05)
                if failures:
                    return sent, True
        sent += 1
    return sent, False


def _produce_values(
    client: Any, topic: str, values: Iterable[Any], failures: list[Any]
) -> tuple[int, bool]:
    """:func:`_produce_all` for values without key or headers (one call less per message)."""
    sent = 0
    produce, poll = client.produce, client.poll
    try:
        for value in values:
            while True:
                try:
                    produce(topic, value)
                    break
                except BufferError:
                    poll(0.05)
                    if failures:
                        return sent, True
            sent += 1
    except TypeError as exc:
        raise TypeError(f"record {sent}: {exc} (use serializer='json' or a function)") from None
    return sent, False


def _collect(failures: list[Any]) -> Callable[[Any, Any], None]:
    def on_delivery(error: Any, message: Any) -> None:
        if error is not None:
            failures.append((message.key(), error))

    return on_delivery


def _begin(client: Any, settings: KafkaSettings, seen: _Seen) -> None:
    ck = import_client("confluent_kafka", SERVICE)
    try:
        client.init_transactions(settings.request_timeout)
        client.begin_transaction()
    except ck.KafkaException as exc:
        raise classify(exc, settings, seen, what="starting the transaction") from None


def _abort(client: Any) -> None:
    ck = import_client("confluent_kafka", SERVICE)
    try:
        client.abort_transaction(10.0)
    except ck.KafkaException as exc:
        logger(SERVICE).warning("aborting the transaction failed: %s", exc)


def _delivery_failed(
    settings: KafkaSettings,
    seen: _Seen,
    topic: str,
    *,
    sent: int,
    failures: list[Any],
    outstanding: int,
    records: Any,
) -> CarbonError:
    total = len(records) if hasattr(records, "__len__") else None
    delivered = sent - len(failures) - outstanding
    counts: dict[str, int] = {}
    for _, error in failures:
        counts[f"{error.name()}: {error.str()}"] = (
            counts.get(f"{error.name()}: {error.str()}", 0) + 1
        )
    causes = "; ".join(f"{text} (x{n})" for text, n in counts.items())
    decisive = seen.decisive()
    if decisive is not None and _code(decisive) in _CREDENTIALS:
        return classify(decisive, settings, seen, what=f"publishing to {topic!r}")
    parts = [f"{len(failures)} of {sent} records sent to topic {topic!r} were not delivered"]
    if causes:
        parts.append(causes)
    if decisive is not None:
        parts.append(f"the client saw: {decisive.str()} ({_code(decisive)})")
    if outstanding:
        parts.append(f"{outstanding} unconfirmed when the flush deadline passed")
    not_sent = (total - sent) if total is not None else 0
    if not_sent:
        parts.append(f"{not_sent} not sent (publish stopped at the first failures)")
    message = redact(", ".join(parts), settings.secret_values())
    return DeliveryFailed(
        settings.endpoint,
        message,
        delivered=max(0, delivered),
        failed=[(k, e.name(), e.str()) for k, e in failures[:1000]],
        failed_count=len(failures),
        not_sent=not_sent,
    )


# ---- reading ------------------------------------------------------------------------------


def _watermarks(
    client: Any,
    settings: KafkaSettings,
    seen: _Seen,
    topic: str,
    *,
    partition: int,
    deadline: float,
) -> tuple[int, int]:
    """``(low, high)`` of one partition, asked of its leader; retried while the leader moves
    (right after a broker restart the answer may be ``NOT_LEADER_FOR_PARTITION`` for a moment)."""
    ck = import_client("confluent_kafka", SERVICE)
    tp = ck.TopicPartition(topic, partition)
    while True:
        remaining = deadline - time.monotonic()
        try:
            low, high = client.get_watermark_offsets(tp, timeout=max(0.1, min(5.0, remaining)))
            return int(low), int(high)
        except ck.KafkaException as exc:
            error = _kafka_error(exc)
            transient = error is not None and error.name() in _TRANSIENT
            if not transient or time.monotonic() >= deadline or seen.decisive():
                raise classify(
                    exc, settings, seen, what=f"offsets of {topic}[{partition}]"
                ) from None
            time.sleep(0.05)


def _decode(values: list[bytes | None], deserializer: Deserializer) -> pa.Array:
    pa_mod = import_client("pyarrow", "tables")
    binary = pa_mod.array(values, pa_mod.binary())
    if deserializer == "bytes":
        return binary
    if deserializer == "str":
        try:
            return binary.cast(pa_mod.string())
        except pa_mod.ArrowInvalid:  # not UTF-8: decode with replacement characters
            return pa_mod.array(
                [v.decode("utf-8", "replace") if v is not None else None for v in values]
            )
    if deserializer == "json":  # text here; parsed into Python objects by tail()
        return binary.cast(pa_mod.string())
    raise ValueError(f"deserializer={deserializer!r}; use 'str', 'json' or 'bytes'")


def tail(
    topic: str,
    n: int = 20,
    *,
    as_: TableFormat = "pandas",
    deserializer: Deserializer = "str",
    isolation: Literal["read_committed", "read_uncommitted"] = "read_committed",
    **overrides: Any,
) -> Any:
    """The last ``n`` offsets of each partition of ``topic`` as a table: ``partition``,
    ``offset``, ``timestamp`` (UTC), ``key``, ``value``, ``headers``.

    Read from the watermark offsets with an assigned (not subscribed) consumer: no group is
    joined and nothing is committed. ``deserializer``: ``"str"`` (UTF-8 text), ``"bytes"`` or
    ``"json"`` (parsed objects; pandas only). Transaction markers and aborted records take
    offsets too, so a partition may give fewer than ``n`` rows.
    """
    check_format(as_)
    if n < 1:
        raise ValueError("n must be at least 1")
    if deserializer == "json" and as_ != "pandas":
        raise ValueError("deserializer='json' gives Python objects: use it with as_='pandas'")
    fields, properties = _split(overrides)
    settings = KafkaSettings.load(**fields)
    ck = import_client("confluent_kafka", SERVICE)
    config = {
        "group.id": f"{settings.default_client_id()}-tail",  # required; never joined
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "isolation.level": isolation,
        "fetch.wait.max.ms": 100,
        **properties,
    }
    client, seen = _helper_client(settings, "consumer", config)
    try:
        deadline = time.monotonic() + settings.connect_timeout + settings.request_timeout
        partitions = _topic_partitions(client, settings, seen, topic, deadline)
        assignment = []
        for partition in partitions:
            low, high = _watermarks(
                client, settings, seen, topic, partition=partition, deadline=deadline
            )
            if high > low:
                assignment.append(ck.TopicPartition(topic, partition, max(low, high - n)))
        columns = _read_assigned(client, settings, seen, assignment, deadline)
    finally:
        client.close()
    table = _table(columns, deserializer)
    if deserializer == "json":
        frame = convert(table, "pandas")
        frame["value"] = [json.loads(v) if v is not None else None for v in frame["value"]]
        return frame
    return convert(table, as_)


class _Columns:
    """The fields of consumed messages, one list per column: Message objects are not kept
    (a million of them would keep the garbage collector busy for seconds)."""

    def __init__(self) -> None:
        self.partition: list[int] = []
        self.offset: list[int] = []
        self.timestamp: list[int] = []
        self.key: list[bytes | None] = []
        self.value: list[bytes | None] = []
        self.headers: list[Any] = []

    def add(self, messages: list[Any]) -> None:
        partition, offset, timestamp = self.partition, self.offset, self.timestamp
        key, value, headers = self.key, self.value, self.headers
        for message in messages:
            partition.append(message.partition())
            offset.append(message.offset())
            timestamp.append(message.timestamp()[1])
            key.append(message.key())
            value.append(message.value())
            headers.append(message.headers())


def _read_assigned(
    client: Any, settings: KafkaSettings, seen: _Seen, assignment: list[Any], deadline: float
) -> _Columns:
    """Every message from the assigned offsets up to the end of each partition (its EOF event:
    the high watermark, or the last stable offset for read_committed)."""
    columns = _Columns()
    if not assignment:
        return columns
    ck = import_client("confluent_kafka", SERVICE)
    eof_code = ck.KafkaError._PARTITION_EOF
    client.assign(assignment)
    open_partitions = {tp.partition for tp in assignment}
    while open_partitions:
        if time.monotonic() >= deadline:
            raise Unreachable(
                SERVICE,
                settings.endpoint,
                f"reading {assignment[0].topic} did not reach the end of partitions "
                f"{sorted(open_partitions)} within the request timeout",
            )
        batch = client.consume(10_000, 0.2)
        good = [m for m in batch if m.error() is None]
        if len(good) < len(batch):
            for message in batch:
                error = message.error()
                if error is None:
                    continue
                if error.code() == eof_code:
                    open_partitions.discard(message.partition())
                elif not error.retriable():
                    raise classify(error, settings, seen, what=f"reading {message.topic()}")
        columns.add(good)
    return columns


def _table(columns: _Columns, deserializer: Deserializer) -> pa.Table:
    pa_mod = import_client("pyarrow", "tables")
    header_type = pa_mod.binary() if deserializer == "bytes" else pa_mod.string()
    headers = [_headers(h, deserializer) if h else None for h in columns.headers]
    return pa_mod.table(
        {
            "partition": pa_mod.array(columns.partition, pa_mod.int32()),
            "offset": pa_mod.array(columns.offset, pa_mod.int64()),
            "timestamp": pa_mod.array(columns.timestamp, pa_mod.int64()).cast(
                pa_mod.timestamp("ms", tz="UTC")
            ),
            "key": _decode(columns.key, "bytes" if deserializer == "bytes" else "str"),
            "value": _decode(columns.value, deserializer),
            "headers": pa_mod.array(headers, pa_mod.map_(pa_mod.string(), header_type)),
        }
    )


def _headers(
    headers: list[tuple[str, bytes | None]] | None, deserializer: Deserializer
) -> list[tuple[str, Any]] | None:
    if not headers:
        return None
    if deserializer == "bytes":
        return headers
    return [(k, v.decode("utf-8", "replace") if v is not None else None) for k, v in headers]


# ---- cluster views ----------------------------------------------------------------------------


def _offsets(
    client: Any, settings: KafkaSettings, seen: _Seen, partitions: list[Any], spec: str
) -> dict[tuple[str, int], int]:
    """Earliest or latest offsets of ``partitions`` (one ListOffsets request, repeated for the
    partitions whose leader is still being elected, e.g. of a topic just created, until the
    request timeout)."""
    admin_mod = import_client("confluent_kafka.admin", SERVICE)
    ck = import_client("confluent_kafka", SERVICE)
    offset_spec = getattr(admin_mod.OffsetSpec, spec)()
    deadline = time.monotonic() + settings.request_timeout
    result: dict[tuple[str, int], int] = {}
    pending = list(partitions)
    while pending:
        futures = client.list_offsets(
            {tp: offset_spec for tp in pending}, request_timeout=settings.request_timeout
        )
        pending = []
        for tp, future in futures.items():
            try:
                result[(tp.topic, tp.partition)] = int(future.result().offset)
            except ck.KafkaException as exc:
                error = _kafka_error(exc)
                transient = error is not None and error.name() in _TRANSIENT
                if not transient or time.monotonic() >= deadline:
                    raise classify(exc, settings, seen, what=f"offsets of {tp.topic}") from None
                pending.append(ck.TopicPartition(tp.topic, tp.partition))
        if pending:
            time.sleep(0.05)
    return result


def topics(*, internal: bool = False, as_: TableFormat = "pandas", **overrides: Any) -> Any:
    """The cluster's topics: ``topic``, ``partitions``, ``replication_factor`` and
    ``messages`` (end minus start offsets, summed; transaction markers count too).
    Internal topics (``__consumer_offsets``...) only with ``internal=True``."""
    check_format(as_)
    fields, properties = _split(overrides)
    settings = KafkaSettings.load(**fields)
    ck = import_client("confluent_kafka", SERVICE)
    pa_mod = import_client("pyarrow", "tables")
    client, seen = _helper_client(settings, "admin", properties)
    deadline = time.monotonic() + settings.connect_timeout + settings.request_timeout
    metadata = _metadata(client, settings, seen, None, deadline)
    listed = sorted(
        (t for name, t in metadata.topics.items() if internal or not name.startswith("__")),
        key=lambda t: t.topic,
    )
    partitions = [ck.TopicPartition(t.topic, p) for t in listed for p in t.partitions]
    earliest = _offsets(client, settings, seen, partitions, "earliest")
    latest = _offsets(client, settings, seen, partitions, "latest")
    rows = {
        "topic": [t.topic for t in listed],
        "partitions": [len(t.partitions) for t in listed],
        "replication_factor": [
            len(next(iter(t.partitions.values())).replicas) if t.partitions else 0 for t in listed
        ],
        "messages": [
            sum(latest[(t.topic, p)] - earliest[(t.topic, p)] for p in t.partitions) for t in listed
        ],
    }
    schema = pa_mod.schema(
        [
            ("topic", pa_mod.string()),
            ("partitions", pa_mod.int32()),
            ("replication_factor", pa_mod.int32()),
            ("messages", pa_mod.int64()),
        ]
    )
    return convert(pa_mod.table(rows, schema=schema), as_)


def lag(group_id: str | None = None, *, as_: TableFormat = "pandas", **overrides: Any) -> Any:
    """How far consumer group ``group_id`` (default ``<user>-notebook``) is behind, per
    partition it committed offsets for: ``group``, ``topic``, ``partition``, ``committed``,
    ``end_offset``, ``lag``. An unknown group has no rows."""
    check_format(as_)
    fields, properties = _split(overrides)
    settings = KafkaSettings.load(**fields)
    group = group_id or settings.default_group_id()
    ck = import_client("confluent_kafka", SERVICE)
    pa_mod = import_client("pyarrow", "tables")
    client, seen = _helper_client(settings, "admin", properties)
    deadline = time.monotonic() + settings.connect_timeout + settings.request_timeout
    _metadata(client, settings, seen, None, deadline)
    request = ck.ConsumerGroupTopicPartitions(group)
    futures = client.list_consumer_group_offsets(
        [request], request_timeout=settings.request_timeout
    )
    try:
        committed = [tp for tp in futures[group].result().topic_partitions if tp.offset >= 0]
    except ck.KafkaException as exc:
        raise classify(exc, settings, seen, what=f"offsets of group {group!r}") from None
    committed.sort(key=lambda tp: (tp.topic, tp.partition))
    ends = _offsets(
        client,
        settings,
        seen,
        [ck.TopicPartition(tp.topic, tp.partition) for tp in committed],
        "latest",
    )
    end_offsets = [ends[(tp.topic, tp.partition)] for tp in committed]
    rows = {
        "group": [group] * len(committed),
        "topic": [tp.topic for tp in committed],
        "partition": [tp.partition for tp in committed],
        "committed": [tp.offset for tp in committed],
        "end_offset": end_offsets,
        "lag": [max(0, end - tp.offset) for tp, end in zip(committed, end_offsets, strict=True)],
    }
    schema = pa_mod.schema(
        [
            ("group", pa_mod.string()),
            ("topic", pa_mod.string()),
            ("partition", pa_mod.int32()),
            ("committed", pa_mod.int64()),
            ("end_offset", pa_mod.int64()),
            ("lag", pa_mod.int64()),
        ]
    )
    return convert(pa_mod.table(rows, schema=schema), as_)


# ---- doctor ---------------------------------------------------------------------------------


def check(settings: KafkaSettings) -> str:
    """Doctor: a metadata request (bounded by ``connect_timeout``) naming the cause of a failure
    from ``error_cb`` (authentication, TLS, name resolution, unreachable)."""
    client, seen = _helper_client(settings, "admin")
    deadline = time.monotonic() + settings.connect_timeout
    metadata = _metadata(client, settings, seen, None, deadline)
    brokers = len(metadata.brokers)
    user = f" as {settings.username}" if settings.protocol.startswith("SASL") else ""
    return (
        f"cluster {metadata.cluster_id}, {brokers} broker{'s' if brokers != 1 else ''},"
        f" {len([t for t in metadata.topics if not t.startswith('__')])} topics{user}"
    )
