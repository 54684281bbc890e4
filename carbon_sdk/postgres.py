"""PostgreSQL: settings, configured clients (psycopg, pool, SQLAlchemy, ADBC), Arrow-native
queries and writes, and the doctor check.

Tables move through ADBC (``adbc-driver-postgresql``): results arrive as Arrow via binary COPY,
writes use bulk ingest, both without per-row Python work. Parameters are bound by the server
using PostgreSQL's own placeholders ``$1, $2, ...``; nothing is interpolated into SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr

from carbon_sdk._lazy import import_client
from carbon_sdk._redact import redact
from carbon_sdk._tables import TableFormat, check_format, convert, to_arrow
from carbon_sdk.errors import (
    AuthFailed,
    NotFound,
    QueryError,
    ServiceError,
    TLSError,
    Unreachable,
)
from carbon_sdk.settings import ServiceSettings
from carbon_sdk.settings.carbon import service_settings

if TYPE_CHECKING:
    import psycopg
    import pyarrow as pa
    from psycopg_pool import ConnectionPool
    from sqlalchemy.engine import Engine

SERVICE = "postgres"
IfExists = Literal["fail", "append", "replace"]
INGEST_MODES: dict[str, str] = {"fail": "create", "append": "create_append", "replace": "replace"}


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
    def dbname(self) -> str | None:
        """The database connected to: ``database``, else libpq's default, the user name."""
        return self.database or self.user

    @property
    def endpoint(self) -> str:
        """``host:port/database``, without credentials."""
        return f"{self.host}:{self.port}/{self.dbname}"

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
            "connect_timeout": max(2, round(self.connect_timeout)),  # libpq's minimum is 2 s
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
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        return f"postgresql://{auth}@{host}:{port}/{quote(dbname, safe='')}?{query}"


Settings = PostgresSettings

# ---- errors ---------------------------------------------------------------------------------

_CONNECTION_STATES = ("08", "57P")  # connection exceptions, operator intervention (shutdown)


def _position(exc: Exception) -> str | None:
    diag = getattr(exc, "diag", None)  # psycopg
    if diag is not None and diag.statement_position:
        return str(diag.statement_position)
    for key, value in getattr(exc, "details", None) or []:  # ADBC
        if key == b"PG_DIAG_STATEMENT_POSITION":
            return str(value.decode())
    return None


def classify(exc: Exception, settings: PostgresSettings) -> ServiceError:
    """Turn a psycopg or ADBC error into the carbon-sdk error that says what went wrong."""
    text = redact(str(exc).strip() or type(exc).__name__, settings.secret_values())
    text = re.sub(r"^[A-Z_]+: (\[libpq\] )?", "", text)  # ADBC's status code prefix
    first = text.splitlines()[0]
    state = getattr(exc, "sqlstate", None) or ""
    lowered = text.lower()
    endpoint = settings.endpoint
    if state in {"28P01", "28000"} or "password authentication failed" in lowered:
        return AuthFailed(SERVICE, endpoint, f"{first} (check postgres.user and postgres.password)")
    if state == "3D000" or re.search(r'database ".*" does not exist', lowered):
        return NotFound(SERVICE, endpoint, f"{first} (check postgres.database)")
    if "invalid response" in lowered or "expected authentication request" in lowered:
        return ServiceError(SERVICE, endpoint, f"{first} (is this a PostgreSQL server? check port)")
    if "certificate" in lowered or "ssl" in lowered:
        return TLSError(SERVICE, endpoint, f"{first} (check postgres.sslmode and ca_bundle)")
    if state.startswith(_CONNECTION_STATES) or any(
        s in lowered
        for s in ("refused", "timeout expired", "could not translate", "no route", "terminat")
    ):
        return Unreachable(SERVICE, endpoint, first)
    if state or "ERROR:" in text:  # the server rejected the statement
        where = f", position {pos}" if (pos := _position(exc)) else ""
        detail = text.split("\n\nQuery was:")[0]
        code = f"SQLSTATE {state}{where}" if state else "rejected by the server"
        return QueryError(SERVICE, endpoint, f"{detail} ({code})")
    return ServiceError(SERVICE, endpoint, first)


@contextmanager
def _errors(settings: PostgresSettings, *client_errors: type[BaseException]) -> Iterator[None]:
    try:
        yield
    except client_errors as exc:
        raise classify(exc, settings) from None  # type: ignore[arg-type]


# ---- clients --------------------------------------------------------------------------------


def connect(*, autocommit: bool = False, **overrides: Any) -> psycopg.Connection[Any]:
    """A new psycopg 3 connection to the platform's PostgreSQL.

    ``overrides`` are settings on top of the configured ones, e.g. ``connect(database="mlflow")``.
    """
    settings: PostgresSettings = service_settings(SERVICE, **overrides)
    psycopg_mod = import_client("psycopg", SERVICE)
    with _errors(settings, psycopg_mod.Error):
        conn: psycopg.Connection[Any] = psycopg_mod.connect(
            **settings.libpq_params(), autocommit=autocommit
        )
    return conn


def pool(*, min_size: int = 1, max_size: int = 10, **overrides: Any) -> ConnectionPool[Any]:
    """An open ``psycopg_pool.ConnectionPool``; connections are checked before being handed out,
    so one broken by a server restart is replaced instead of failing the next user."""
    settings: PostgresSettings = service_settings(SERVICE, **overrides)
    pool_cls = import_client("psycopg_pool", SERVICE).ConnectionPool
    connection_pool: ConnectionPool[Any] = pool_cls(
        kwargs=settings.libpq_params(),
        min_size=min_size,
        max_size=max_size,
        timeout=settings.connect_timeout,
        check=pool_cls.check_connection,
        name=f"carbon-sdk-{settings.dbname}",
        open=True,
    )
    return connection_pool


def engine(**overrides: Any) -> Engine:
    """A SQLAlchemy 2 engine (``postgresql+psycopg``) with pre-ping and the configured TLS."""
    settings: PostgresSettings = service_settings(SERVICE, **overrides)
    sqlalchemy = import_client("sqlalchemy", SERVICE)
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
    return created


def adbc_connect(**overrides: Any) -> Any:
    """An ADBC DB-API connection (Arrow-native); ``fetch_arrow_table()`` on its cursors."""
    settings: PostgresSettings = service_settings(SERVICE, **overrides)
    return _adbc(settings)


def _adbc(settings: PostgresSettings) -> Any:
    dbapi = import_client("adbc_driver_postgresql.dbapi", SERVICE)
    errors = import_client("adbc_driver_manager", SERVICE)
    with _errors(settings, errors.Error):
        return dbapi.connect(settings.uri())


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


def _params(params: Sequence[Any] | None) -> Sequence[Any] | None:
    if params is not None and (isinstance(params, str | bytes) or not isinstance(params, Sequence)):
        raise TypeError("params must be a sequence bound to $1, $2, ... (e.g. a tuple)")
    return params


def query(
    sql: str,
    params: Sequence[Any] | None = None,
    *,
    as_: TableFormat = "pandas",
    **overrides: Any,
) -> Any:
    """Run ``sql`` and return the whole result as a pandas/polars DataFrame or Arrow table.

    Parameters are bound server-side to PostgreSQL placeholders: ``query("select * from t where
    id = $1", (42,))``. Types are preserved: numeric(p, s) as decimals, timestamptz tz-aware,
    arrays as lists, uuid and json as Arrow extension types, NULLs as missing values.
    """
    check_format(as_)
    settings: PostgresSettings = service_settings(SERVICE, **overrides)
    errors = import_client("adbc_driver_manager", SERVICE)
    with _adbc(settings) as conn, conn.cursor() as cursor, _errors(settings, errors.Error):
        cursor.execute(sql, _params(params))
        table = cursor.fetch_arrow_table()
    return convert(normalize(table), as_)


def iter_batches(
    sql: str,
    params: Sequence[Any] | None = None,
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
    settings: PostgresSettings = service_settings(SERVICE, **overrides)
    errors = import_client("adbc_driver_manager", SERVICE)
    pa_mod = import_client("pyarrow", "tables")
    with _adbc(settings) as conn, conn.cursor() as cursor, _errors(settings, errors.Error):
        cursor.execute(sql, _params(params))
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

    ``if_exists``: ``"fail"`` (the table must not exist), ``"append"`` (create if missing),
    ``"replace"`` (drop and recreate).
    """
    if if_exists not in INGEST_MODES:
        raise ValueError(f"if_exists={if_exists!r}; use one of: {', '.join(INGEST_MODES)}")
    arrow = to_arrow(data)  # unsupported dtypes fail here, before anything is sent
    settings: PostgresSettings = service_settings(SERVICE, **overrides)
    errors = import_client("adbc_driver_manager", SERVICE)
    with _adbc(settings) as conn:
        try:
            with conn.cursor() as cursor, _errors(settings, errors.Error):
                written = cursor.adbc_ingest(
                    table, arrow, mode=INGEST_MODES[if_exists], db_schema_name=schema
                )
            conn.commit()
        except BaseException:
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
