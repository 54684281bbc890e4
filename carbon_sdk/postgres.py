"""PostgreSQL: settings, configured clients (psycopg, pool, SQLAlchemy, ADBC), Arrow-native
queries and writes, and the doctor check.

Tables move through ADBC (``adbc-driver-postgresql``): results arrive as Arrow via binary COPY,
writes use bulk ingest, both without per-row Python work. Parameters are bound by the server
(``$1``, psycopg's ``%s`` and ``%(name)s``, or ``:name``: :mod:`carbon_sdk._params`); nothing
is interpolated into SQL text.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator

from carbon_sdk._classify import ErrorTable, Rule, fix_for, headline
from carbon_sdk._lazy import import_client
from carbon_sdk._log import client_created
from carbon_sdk._params import Params, bind
from carbon_sdk._redact import redact
from carbon_sdk._results import report
from carbon_sdk._retry import retry_transient
from carbon_sdk._tables import TableFormat, check_format, convert, to_arrow
from carbon_sdk._timeouts import Waited
from carbon_sdk.errors import (
    AuthFailed,
    CarbonError,
    ConfigurationError,
    NotFound,
    QueryError,
    ServiceError,
    TLSError,
    Unreachable,
)
from carbon_sdk.settings import ServiceSettings

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from psycopg_pool import ConnectionPool
    from sqlalchemy.engine import Engine

SERVICE: Literal["postgres"] = "postgres"
IfExists = Literal["fail", "append", "replace"]
INGEST_MODES: dict[str, str] = {"fail": "create", "append": "create_append", "replace": "replace"}
_HOST_NAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")


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

    @field_validator("host")
    @classmethod
    def _valid_host(cls, host: str | None) -> str | None:
        """A host name, an IPv4 or IPv6 address (brackets optional) or a socket directory."""
        if host is None or host.startswith("/"):
            return host
        bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if ":" in bare:
            try:
                return str(ipaddress.IPv6Address(bare))
            except ValueError:
                raise ValueError("not a valid IPv6 address") from None
        if not _HOST_NAME.fullmatch(bare):
            raise ValueError("not a valid host name or address")
        return bare

    @property
    def dbname(self) -> str | None:
        """The database connected to: ``database``, else libpq's default, the user name."""
        return self.database or self.user

    @property
    def endpoint(self) -> str:
        """``host:port/database`` (an IPv6 host in brackets), without credentials."""
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}/{self.dbname}"

    @property
    def libpq_connect_timeout(self) -> int:
        """``connect_timeout`` as libpq takes it: whole seconds, at least 2."""
        return max(2, round(self.connect_timeout))

    def libpq_params(self) -> dict[str, Any]:
        """libpq connection parameters (the password unwrapped here, for the client only)."""
        self.require()
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "dbname": self.dbname,
            "password": self.secret("password"),
            "sslmode": self.sslmode if self.verify else "require",
            "application_name": self.application_name,
            "connect_timeout": self.libpq_connect_timeout,
        }
        if self.ca_bundle and self.verify:
            params["sslrootcert"] = str(self.ca_bundle)
        return {k: v for k, v in params.items() if v is not None}

    def uri(self) -> str:
        """A ``postgresql://`` URI for ADBC; contains the password: never show it."""
        params = self.libpq_params()
        auth = quote(params.pop("user"), safe="")
        if "password" in params:
            auth += ":" + quote(params.pop("password"), safe="")
        host, port, dbname = params.pop("host"), params.pop("port"), params.pop("dbname")
        if ":" in host:  # an IPv6 address
            host = f"[{host}]"
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}?{query}"


Settings = PostgresSettings

# ---- errors ---------------------------------------------------------------------------------

ERRORS = ErrorTable(
    Rule(
        AuthFailed,
        "check postgres.user and postgres.password",
        codes=("28P01", "28000"),
        text=("password authentication failed", "no password supplied"),
    ),
    Rule(NotFound, "check postgres.database", codes=("3D000",), text=('database "',)),
    Rule(
        ConfigurationError,
        "check postgres.host and postgres.port",
        text=("invalid integer value", "invalid connection option", "invalid uri", "invalid ipv6"),
    ),
    Rule(
        ServiceError,
        "is this a PostgreSQL server? check postgres.port",
        text=("invalid response", "expected authentication request"),
    ),
    Rule(
        Unreachable,
        # a connection lost mid-operation; over TLS libpq says "SSL connection has been closed
        # unexpectedly" or "SSL SYSCALL error: EOF detected", which is not a TLS setting's fault
        text=("closed unexpectedly", "ssl syscall error"),
    ),
    Rule(
        TLSError,
        "check postgres.sslmode and postgres.ca_bundle",
        text=("certificate", "ssl", "tlsv1 alert", "wrong version number"),
    ),
    Rule(
        Unreachable,
        codes=("08", "57P"),  # connection exceptions, operator intervention (shutdown)
        text=("refused", "timeout expired", "could not translate", "no route", "terminat"),
    ),
    Rule(QueryError, codes=("",), text=("error:",)),  # any other SQLSTATE: the server said no
)


# The server refuses new connections for a moment: too many connections (53300), starting up
# or in recovery (57P03). Nothing was sent yet, so opening the connection again is safe.
_TRANSIENT = ("too many connections", "is starting up", "not yet accepting connections")


def _transient(exc: Exception) -> bool:
    return any(text in str(exc) for text in _TRANSIENT)


def _position(exc: Exception) -> str | None:
    diag = getattr(exc, "diag", None)  # psycopg
    if diag is not None and diag.statement_position:
        return str(diag.statement_position)
    for key, value in getattr(exc, "details", None) or []:  # ADBC
        if key == b"PG_DIAG_STATEMENT_POSITION":
            return str(value.decode())
    return None


def classify(
    exc: Exception, settings: PostgresSettings, elapsed: float | None = None
) -> CarbonError:
    """Turn a psycopg, ADBC or SQLAlchemy error into the carbon-sdk error saying what went wrong
    (by SQLSTATE first, see :data:`ERRORS`); secrets never appear in the message. ``elapsed``:
    seconds the failed call took, stated when the connection timed out."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    text = redact(str(cause).strip() or type(cause).__name__, settings.secret_values())
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text)  # ADBC's status code prefix
    first = headline(text)
    state = getattr(cause, "sqlstate", None) or ""
    rule = ERRORS.match(cause, state)
    if rule is None:
        return ServiceError(SERVICE, settings.endpoint, first)
    if rule.error is ConfigurationError:
        return ConfigurationError(f"postgres at {settings.endpoint}: {first} ({rule.fix})")
    if rule.error is QueryError:
        where = f", position {pos}" if (pos := _position(cause)) else ""
        detail = text.split("\n\nQuery was:")[0]
        code = f"SQLSTATE {state}{where}" if state else "rejected by the server"
        return QueryError(SERVICE, settings.endpoint, f"{detail} ({code})")
    if elapsed is not None and "timeout expired" in first:
        first = f"{Waited(settings.libpq_connect_timeout, elapsed)}: {first}"
    error = cast("type[ServiceError]", rule.error)
    fix = fix_for(rule, settings, first)
    return error(SERVICE, settings.endpoint, f"{first} ({fix})" if fix else first)


@contextmanager
def _errors(settings: PostgresSettings, *client_errors: type[BaseException]) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    except client_errors as exc:
        elapsed = time.monotonic() - started
        raise classify(exc, settings, elapsed) from None  # type: ignore[arg-type]


# ---- clients --------------------------------------------------------------------------------


def connect(*, autocommit: bool = False, **overrides: Any) -> psycopg.Connection[Any]:
    """A new psycopg 3 connection to the platform's PostgreSQL.

    ``overrides`` are settings on top of the configured ones, e.g. ``connect(database="mlflow")``.
    """
    settings = PostgresSettings.load(**overrides)
    psycopg_mod = import_client("psycopg", SERVICE)
    client_created(settings, "psycopg connection")
    with _errors(settings, psycopg_mod.Error):
        conn: psycopg.Connection[Any] = retry_transient(
            settings,
            lambda: psycopg_mod.connect(**settings.libpq_params(), autocommit=autocommit),
            _transient,
        )
    return conn


def pool(*, min_size: int = 1, max_size: int = 10, **overrides: Any) -> ConnectionPool[Any]:
    """An open ``psycopg_pool.ConnectionPool``; connections are checked before being handed out,
    so one broken by a server restart is replaced instead of failing the next user.

    One connection is tried first, so a wrong password or host raises the error that says so
    (the pool itself would only time out later, with ``PoolTimeout``)."""
    settings = PostgresSettings.load(**overrides)
    pool_cls = import_client("psycopg_pool", SERVICE).ConnectionPool
    psycopg_mod = import_client("psycopg", SERVICE)
    params = settings.libpq_params()
    client_created(settings, "psycopg_pool.ConnectionPool")
    with _errors(settings, psycopg_mod.Error):
        retry_transient(settings, lambda: psycopg_mod.connect(**params), _transient).close()
    connection_pool: ConnectionPool[Any] = pool_cls(
        kwargs=params,
        min_size=min_size,
        max_size=max_size,
        timeout=settings.connect_timeout,
        check=pool_cls.check_connection,
        name=f"carbon-sdk-{settings.dbname}",
        open=True,
    )
    return connection_pool


def engine(**overrides: Any) -> Engine:
    """A SQLAlchemy 2 engine (``postgresql+psycopg``) with pre-ping and the configured TLS.

    Errors raised through it (connecting, executing) are carbon-sdk errors like every other
    function's here; the driver's exception stays available as ``__cause__``."""
    settings = PostgresSettings.load(**overrides)
    sqlalchemy = import_client("sqlalchemy", SERVICE)
    client_created(settings, "SQLAlchemy engine")
    params = settings.libpq_params()
    url = sqlalchemy.URL.create(
        "postgresql+psycopg",
        username=params.pop("user"),
        password=params.pop("password", None),  # URL hides it in repr and str
        host=params.pop("host"),
        port=params.pop("port"),
        database=params.pop("dbname"),
    )
    created: Engine = sqlalchemy.create_engine(url, connect_args=params, pool_pre_ping=True)

    def carbon_error(context: Any) -> None:
        if not context.is_pre_ping:
            raise classify(context.original_exception, settings) from context.sqlalchemy_exception

    sqlalchemy.event.listen(created, "handle_error", carbon_error)
    return created


def adbc_connect(**overrides: Any) -> Any:
    """An ADBC DB-API connection (Arrow-native); ``fetch_arrow_table()`` on its cursors."""
    settings = PostgresSettings.load(**overrides)
    return _adbc(settings)


def _adbc(settings: PostgresSettings) -> Any:
    client_created(settings, "ADBC connection")
    dbapi = import_client("adbc_driver_postgresql.dbapi", SERVICE)
    errors = import_client("adbc_driver_manager", SERVICE)
    with _errors(settings, errors.Error):
        return retry_transient(settings, lambda: dbapi.connect(settings.uri()), _transient)


# ---- tables ---------------------------------------------------------------------------------


def _typmod_decimal(field: pa.Field) -> pa.DataType | None:
    """``decimal(p, s)`` for a constrained ``numeric(p, s)`` column, else None."""
    pa_mod = import_client("pyarrow", "tables")
    typmod = int((field.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
    if typmod < 4:
        return None
    precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
    factory = pa_mod.decimal128 if precision <= 38 else pa_mod.decimal256
    decimal: pa.DataType = factory(precision, scale)
    return decimal


def _numeric(field: pa.Field, text: pa.ChunkedArray) -> pa.ChunkedArray:
    """A ``numeric`` column as decimals: the declared precision and scale, or for unconstrained
    numeric (``sum()``, ``avg()``...) the smallest scale that holds every value exactly.
    Values no decimal can hold (``NaN``, ``Infinity``, > 76 digits) keep the column as text."""
    pa_mod = import_client("pyarrow", "tables")
    pc = import_client("pyarrow.compute", "tables")
    declared = _typmod_decimal(field)
    if declared is not None:
        return text.cast(declared)
    fraction = pc.utf8_length(pc.replace_substring_regex(text, r"^[^.]*\.?", ""))
    scale = pc.max(fraction).as_py() or 0
    for precision, factory in ((38, pa_mod.decimal128), (76, pa_mod.decimal256)):
        if scale <= precision:
            try:
                decimals: pa.ChunkedArray = text.cast(factory(precision, scale))
            except (pa_mod.ArrowInvalid, pa_mod.ArrowNotImplementedError):
                continue
            return decimals
    return text


def normalize(table: pa.Table) -> pa.Table:
    """Replace the driver's opaque PostgreSQL types: ``numeric`` becomes decimal (see
    :func:`_numeric`), other opaque types their text; Arrow's own extension
    types (uuid, json) stay."""
    pa_mod = import_client("pyarrow", "tables")
    for index, field in enumerate(table.schema):
        if not isinstance(field.type, pa_mod.OpaqueType):
            continue
        column = table.column(index)
        values = pa_mod.chunked_array([c.storage for c in column.chunks], field.type.storage_type)
        if field.type.type_name == "numeric":
            values = _numeric(field, values)
        table = table.set_column(index, field.with_type(values.type), values)
    return table


def query(
    sql: str,
    params: Params = None,
    *,
    as_: TableFormat = "pandas",
    **overrides: Any,
) -> Any:
    """Run ``sql`` and return the whole result as a pandas/polars DataFrame or Arrow table.

    Parameters are bound by the server, never written into the SQL: a sequence fills ``$1, $2``
    or psycopg's ``%s``, a mapping fills ``:name`` or ``%(name)s``: ``query("select * from t
    where id = %(id)s", {"id": 42})`` (see docs/sql-parameters.md). Types are preserved:
    numeric(p, s) as decimals, timestamptz tz-aware, arrays as lists, uuid and json as Arrow
    extension types, NULLs as missing values.
    """
    check_format(as_)
    started = time.perf_counter()
    settings = PostgresSettings.load(**overrides)
    errors = import_client("adbc_driver_manager", SERVICE)
    with _adbc(settings) as conn, conn.cursor() as cursor, _errors(settings, errors.Error):
        cursor.execute(*bind(sql, params, SERVICE))
        table = cursor.fetch_arrow_table()
    return report(convert(normalize(table), as_), SERVICE, started)


def iter_batches(
    sql: str,
    params: Params = None,
    *,
    batch_rows: int = 100_000,
    as_: TableFormat = "arrow",
    **overrides: Any,
) -> Iterator[Any]:
    """Stream a large result in chunks of ``batch_rows`` rows (the last may be smaller); each
    chunk as ``as_`` (an Arrow table by default).

    Without ``params`` the result streams by binary COPY and memory stays bounded by a few
    driver batches (16 MB each). With ``params`` libpq receives the whole result of the
    prepared statement before the first chunk: for huge parameterised results, write the
    constants into the SQL or stage them in a table.
    """
    check_format(as_)
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    settings = PostgresSettings.load(**overrides)
    errors = import_client("adbc_driver_manager", SERVICE)
    pa_mod = import_client("pyarrow", "tables")
    with _adbc(settings) as conn, conn.cursor() as cursor, _errors(settings, errors.Error):
        cursor.execute(*bind(sql, params, SERVICE))
        reader = cursor.fetch_record_batch()
        pending: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            while rows >= batch_rows:
                table = pa_mod.Table.from_batches(pending, reader.schema)
                yield convert(normalize(table.slice(0, batch_rows)), as_)
                rest = table.slice(batch_rows)
                pending, rows = rest.to_batches(), rest.num_rows
        if rows:
            yield convert(normalize(pa_mod.Table.from_batches(pending, reader.schema)), as_)


def _table_name(table: str, schema: str | None) -> tuple[str | None, str]:
    """``(schema, table)`` from ``"schema.table"`` or a bare name plus ``schema``."""
    parts = table.split(".")
    if len(parts) == 1 and parts[0]:
        return schema, table
    if len(parts) == 2 and all(parts) and schema is None:
        return parts[0], parts[1]
    raise ValueError(
        f"table={table!r}: give 'table' or 'schema.table' (or table= with schema=), "
        "each part non-empty and without dots"
    )


def write(
    data: Any,
    table: str,
    *,
    schema: str | None = None,
    if_exists: IfExists = "fail",
    **overrides: Any,
) -> int:
    """Write a pandas/polars DataFrame or Arrow table into ``table`` by bulk ingest (COPY), in
    one transaction: on any error nothing is written. Returns the number of rows written.

    ``table`` may be ``"schema.table"`` (as with pandas' ``to_sql``) or a bare name with
    ``schema=`` given separately; names are passed to the server quoted, never as SQL text.
    ``if_exists``: ``"fail"`` (the table must not exist), ``"append"`` (create if missing),
    ``"replace"`` (drop and recreate).
    """
    if if_exists not in INGEST_MODES:
        raise ValueError(f"if_exists={if_exists!r}; use one of: {', '.join(INGEST_MODES)}")
    schema, table = _table_name(table, schema)
    arrow = to_arrow(data)  # unsupported dtypes fail here, before anything is sent
    settings = PostgresSettings.load(**overrides)
    errors = import_client("adbc_driver_manager", SERVICE)
    with _adbc(settings) as conn:
        try:
            with _errors(settings, errors.Error):
                with conn.cursor() as cursor:
                    written = cursor.adbc_ingest(
                        table, arrow, mode=INGEST_MODES[if_exists], db_schema_name=schema
                    )
                conn.commit()
        except BaseException:
            # A connection that died mid-write cannot roll back, and needs not: the server
            # discards the open transaction of a connection it lost. The first error is raised.
            with suppress(errors.Error):
                conn.rollback()
            raise
    return int(written) if written is not None and written >= 0 else arrow.num_rows


# ---- doctor ---------------------------------------------------------------------------------


def check(settings: PostgresSettings) -> str:
    """Doctor: connect, then ``select version(), current_user``."""
    psycopg_mod = import_client("psycopg", SERVICE)
    with (
        _errors(settings, psycopg_mod.Error),
        psycopg_mod.connect(**settings.libpq_params()) as conn,
    ):
        row = conn.execute("select current_setting('server_version'), current_user").fetchone()
    version, user = row if row else ("?", "?")
    return f"PostgreSQL {version} as {user} on {settings.dbname}"
