"""Trino: settings, configured clients (DB-API, SQLAlchemy), Arrow queries, and the doctor check.

Every connection is made by one function, :func:`_connection`, from the settings: the identity
(configured user, else ``JUPYTERHUB_USER``, else the OS user), the authentication (none, basic,
JWT, or a JupyterHub access token re-read on 401), TLS through a ``requests.Session`` of our own
(see :func:`_http_session`), the session defaults (catalog, schema, properties, client tags,
``source``) and the spooling encodings. ``connect()``, ``engine()`` and the table helpers all go
through it, so they behave alike.

Results come in one of two protocols (see docs/trino.md). When the server has spooling on, a
query without parameters runs through the client's public segment API (``conn.cursor("segment")``)
and the SDK's own bounded reader (:mod:`carbon_sdk._spool`) downloads and decodes the segments on
a few threads. Otherwise (spooling off on the server, ``encoding: []``, or ``?`` parameters, which
the segment cursor does not take) the rows come through the direct protocol, page by page, with
``Accept-Encoding: identity`` (asked for gzip, Trino compresses every page: 4x its CPU). Either
way the rows are the server's JSON values (``legacy_primitive_types=True``: the client's per-value
mapping is off), turned into Arrow column by column with vectorised casts; the result's column
types decide the Arrow types, and the protocol used is in the result's metadata
(:func:`protocol_of`).

No private attribute of the trino client is used (tests/trino/test_no_private_client_api.py).
"""

from __future__ import annotations

import base64
import getpass
import importlib.util
import itertools
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, SecretStr

from carbon_sdk import __version__
from carbon_sdk._auth import BearerAuth, CachedToken, basic_header, hub_access_token
from carbon_sdk._classify import ErrorTable, Rule, fix_for
from carbon_sdk._hooks import Statement, after_statement
from carbon_sdk._lazy import import_client
from carbon_sdk._log import client_created
from carbon_sdk._params import Params, bind
from carbon_sdk._progress import progress_bar
from carbon_sdk._redact import redact
from carbon_sdk._results import ATTRS_KEY, report
from carbon_sdk._tables import TableFormat, check_format, convert
from carbon_sdk.errors import (
    AuthFailed,
    ConfigurationError,
    QueryError,
    ServiceError,
    TLSError,
    Unreachable,
)
from carbon_sdk.settings import ServiceSettings

if TYPE_CHECKING:
    import pyarrow as pa
    import requests
    from sqlalchemy.engine import Engine
    from trino.dbapi import Connection, Cursor

SERVICE: Literal["trino"] = "trino"
AuthMode = Literal["none", "basic", "jwt", "jupyterhub"]
# lz4 first: notebooks and the spooling storage share the platform's network, where bandwidth is
# cheap and Trino's CPU is not. On tpch.sf1.orders (2 cores) json+lz4 segments were 80 MB
# against json+zstd's 51 MB, and the whole read took 4.8 s against 5.8 s (medians of 4).
DEFAULT_ENCODINGS = ("json+lz4", "json+zstd", "json")
HUB_TAG = "jupyterhub-user:"
_AUTH_FIX = (
    "check trino.user with trino.password (auth=basic), trino.jwt or trino.jwt_file (auth=jwt), "
    "or JUPYTERHUB_API_TOKEN (auth=jupyterhub); env CARBON_TRINO__*"
)

with warnings.catch_warnings():  # the field `schema` shadows pydantic's deprecated BaseModel.schema
    warnings.simplefilter("ignore", UserWarning)

    class TrinoSettings(ServiceSettings):
        """Where the platform's Trino is, who you are to it, and the session defaults."""

        service: ClassVar[str] = SERVICE
        required: ClassVar[tuple[str, ...]] = ("host",)
        endpoint_fields: ClassVar[tuple[str, ...]] = ("host", "port", "http_scheme")
        env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}

        host: str | None = Field(None, description="Coordinator host name or address.")
        port: int = Field(8080, gt=0, lt=65536, description="Coordinator port.")
        http_scheme: Literal["http", "https"] = Field(
            "http", description="http or https; credentials are only sent over https."
        )
        user: str | None = Field(
            None, description="Trino user (default: JUPYTERHUB_USER, else the OS user)."
        )
        auth: AuthMode = Field(
            "none", description="Authentication: none, basic, jwt or jupyterhub."
        )
        password: SecretStr | None = Field(None, description="Password for auth=basic.")
        jwt: SecretStr | None = Field(None, description="JSON Web Token for auth=jwt.")
        jwt_file: Path | None = Field(
            None, description="File holding the JWT for auth=jwt, re-read on each connection."
        )
        catalog: str | None = Field(None, description="Default catalog, e.g. iceberg.")
        schema: str | None = Field(None, description="Default schema in the catalog.")  # type: ignore[assignment]
        session_properties: dict[str, str] = Field(
            default_factory=dict, description="Session properties set on every connection."
        )
        client_tags: list[str] = Field(
            default_factory=list,
            description="Client tags (resource groups); the JupyterHub user is added.",
        )
        source: str = Field(f"carbon-sdk/{__version__}", description="Shown as the query source.")
        encoding: list[str] = Field(
            default_factory=lambda: list(DEFAULT_ENCODINGS),
            description="Spooling encodings, preferred first; [] for the direct protocol.",
        )
        ui_url: str | None = Field(
            None, description="Base URL of the Trino web UI, for query links in errors."
        )

        @property
        def base_url(self) -> str:
            """``scheme://host:port`` of the coordinator, without credentials."""
            return f"{self.http_scheme}://{self.host}:{self.port}"

        @property
        def endpoint(self) -> str:
            """The coordinator's URL, without credentials."""
            return self.base_url

        def identity(self) -> str | None:
            """The user queries run as: ``user``, else ``JUPYTERHUB_USER``, else the OS user;
            with token auth (jwt, jupyterhub) no OS user: the server takes the token's subject."""
            hub_user = os.environ.get("JUPYTERHUB_USER")
            if self.user or hub_user:
                return self.user or hub_user
            return None if self.auth in ("jwt", "jupyterhub") else getpass.getuser()

        def tags(self) -> list[str]:
            """Client tags: the configured ones plus ``jupyterhub-user:<name>`` in a hub."""
            tags = list(self.client_tags)
            hub_user = os.environ.get("JUPYTERHUB_USER")
            if hub_user and HUB_TAG + hub_user not in tags:
                tags.append(HUB_TAG + hub_user)
            return tags

        def query_link(self, query_id: str | None) -> str | None:
            """The web UI page of ``query_id`` when ``ui_url`` is set."""
            if not (self.ui_url and query_id):
                return None
            return f"{self.ui_url.rstrip('/')}/ui/query.html?{query_id}"


Settings = TrinoSettings

# ---- errors ---------------------------------------------------------------------------------

_STARTING = ("SERVER_STARTING_UP", "still initializing", "starting up")
# The server failed on its spooling storage: the word, or a segment object (<id>.json+zstd...)
_SPOOLING_FAILURE = re.compile(r"spool|key \[[^\]]*\.json(\+\w+)?\]", re.IGNORECASE)
_SPOOLING_FIX = (
    "the server could not use its spooling storage for the result's segments: its operator must "
    "check spooling-manager.properties (fs.location, the storage credentials) and "
    "protocol.spooling.*, see docs/trino.md (Operators: enabling spooling); meanwhile the direct "
    "protocol works: trino.encoding=[] (env CARBON_TRINO__ENCODING='[]')"
)

ERRORS = ErrorTable(
    Rule(
        TLSError,
        "check trino.http_scheme and trino.ca_bundle",
        types=("requests.exceptions.SSLError",),
        text=("certificate", "ssl", "tls", "wrong version number"),
    ),
    Rule(
        Unreachable,
        "is it running? check trino.host, trino.port and trino.connect_timeout",
        types=(
            "requests.exceptions.ConnectionError",
            "requests.exceptions.Timeout",
            "carbon_sdk._http.ConnectionRefused",
        ),
        text=(
            "no answer within",
            "timed out",
            "refused",
            "name or service not known",
            "failed to resolve",
            "no route",
            "connection aborted",
            "remotedisconnected",
            "connection reset",
            "max retries",
        ),
    ),
    Rule(AuthFailed, _AUTH_FIX, codes=("401",), text=("unauthorized", "invalid credentials")),
    Rule(Unreachable, "is the server still starting?", codes=("503",)),
)


def classify(
    exc: BaseException, settings: TrinoSettings, query_id: str | None = None
) -> ServiceError:
    """Turn a trino client or requests error into the carbon-sdk error saying what went wrong
    (by type and HTTP status first, see :data:`ERRORS`); no credential appears in it.
    ``query_id``: the query that was running, named in transport errors too."""
    secrets = [*settings.secret_values(), *_jwt_file_token(settings)]
    endpoint = settings.endpoint
    error_name = getattr(exc, "error_name", None)
    if error_name is not None:  # TrinoQueryError: the server ran and rejected the query
        message = redact(str(getattr(exc, "message", "") or exc), secrets)
        query_id = getattr(exc, "query_id", None)
        if any(s in f"{error_name} {message}" for s in _STARTING):
            return Unreachable(SERVICE, endpoint, f"the server is still starting ({message})")
        parts = [f"query {query_id}" if query_id else None]
        if (location := getattr(exc, "error_location", None)) is not None:
            parts.append(f"line {location[0]}, column {location[1]}")
        if link := settings.query_link(query_id):
            parts.append(link)
        if _SPOOLING_FAILURE.search(message):
            parts.append(_SPOOLING_FIX)
        where = ", ".join(p for p in parts if p)
        return QueryError(
            SERVICE, endpoint, f"{error_name}: {message}" + (f" ({where})" if where else "")
        )
    text = redact(str(exc).strip() or type(exc).__name__, secrets)
    first = _short(text.splitlines()[0])
    status = _http_status(exc, text)
    rule = ERRORS.match(exc, status)
    running = f"query {query_id}: " if query_id else ""
    if rule is None:
        return ServiceError(SERVICE, endpoint, running + first)
    error = cast("type[ServiceError]", rule.error)
    if status == "401":
        first = "401 " + (
            re.sub(r"^error 401: ?(b['\"])?", "", first).rstrip("'\"") or "Unauthorized"
        )
    return error(SERVICE, endpoint, f"{running}{first} ({fix_for(rule, settings, text)})")


def _http_status(exc: BaseException, text: str) -> str | None:
    """The HTTP status of a failed request: from the response, else the trino client's
    ``error 401: ...`` text (its HttpError carries no response)."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return str(response.status_code)
    match = re.match(r"error (\d{3})\b", text)
    return match.group(1) if match else None


def _short(text: str) -> str:
    """The useful end of a urllib3 retry message: the underlying reason."""
    match = re.search(r"\(Caused by \w+\((.*)\)\)", text)
    reason = match.group(1) if match else text
    reason = re.sub(r"<urllib3[^>]*>: ", "", reason).strip("'\" ")
    return reason


def _jwt_file_token(settings: TrinoSettings) -> list[str]:
    """The JWT file's content, a secret that is not a settings field."""
    if settings.jwt_file is not None:
        with suppress(OSError):
            return [settings.jwt_file.read_text(encoding="utf-8").strip()]
    return []


@contextmanager
def _errors(settings: TrinoSettings, cur: Cursor | None = None) -> Iterator[None]:
    """Client and transport errors as carbon-sdk errors, naming ``cur``'s query if it has one."""
    trino_exc = import_client("trino.exceptions", SERVICE)
    requests_mod = import_client("requests", SERVICE)
    try:
        yield
    except trino_exc.TrinoAuthError:
        raise ConfigurationError(
            f"trino at {settings.endpoint}: auth={settings.auth} sends credentials, which "
            "needs https: set trino.http_scheme=https (env CARBON_TRINO__HTTP_SCHEME)"
        ) from None
    except (trino_exc.Error, trino_exc.HttpError, requests_mod.RequestException) as exc:
        query_id = cur.query_id if cur is not None else None
        raise classify(exc, settings, query_id) from None


# ---- authentication and transport -------------------------------------------------------------


class _Authentication:
    """What ``trino.dbapi.connect(auth=...)`` expects: installs a requests auth on the session."""

    def __init__(self, requests_auth: Any) -> None:
        self.requests_auth = requests_auth

    def set_http_session(self, http_session: requests.Session) -> requests.Session:
        http_session.auth = self.requests_auth
        if isinstance(self.requests_auth, BearerAuth):
            self.requests_auth.bind(http_session)  # it resends a 401 with a fresh token
        return http_session

    def get_exceptions(self) -> tuple[Any, ...]:
        return ()


def _jwt(settings: TrinoSettings) -> str:
    if settings.jwt_file is not None:
        try:
            return settings.jwt_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"trino.jwt_file: cannot read it: {exc}") from None
    token = settings.secret("jwt")
    if not token:
        settings.require("jwt")
    return str(token)


def _authentication(settings: TrinoSettings) -> Any:
    """The trino client ``auth`` for ``settings.auth`` (None for ``none``)."""
    if settings.auth == "none":
        return None
    if settings.auth == "basic":
        settings.require("password")
        if settings.http_scheme != "https":
            raise ConfigurationError(
                f"trino at {settings.endpoint}: auth=basic sends a password, which needs https:"
                " set trino.http_scheme=https (env CARBON_TRINO__HTTP_SCHEME)"
            )
        header = basic_header(str(settings.identity()), str(settings.secret("password")))
        return _Authentication(lambda request: _with_header(request, header))
    if settings.auth == "jwt":
        token = _jwt(settings)  # the file is read for each connection, so rotation just works
        return _Authentication(BearerAuth(lambda: token))
    return _Authentication(BearerAuth(_hub_token(settings)))


def _with_header(request: requests.PreparedRequest, header: str) -> requests.PreparedRequest:
    request.headers["Authorization"] = header
    return request


def _hub_token(settings: TrinoSettings) -> CachedToken:
    """The JupyterHub user's access token, re-read from the hub shortly before it expires."""
    return CachedToken(
        lambda: hub_access_token(
            connect_timeout=settings.connect_timeout,
            request_timeout=settings.request_timeout,
            verify=True,
        )
    )


def _http_session(settings: TrinoSettings) -> requests.Session:
    """A requests session with the configured TLS verification and call bounds.

    Its :class:`~carbon_sdk._http.DeadlineAdapter` sets every request's timeouts: the first
    answer within ``connect_timeout``, later waits within ``request_timeout``, and the trino
    client's retries of one request within one deadline (see docs/configuration.md).

    ``trust_env`` is off: otherwise ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` silently replace
    ``verify`` (requests' ``merge_environment_settings``), and the configured CA bundle is never
    used. Proxies from the environment still apply (``HTTPS_PROXY``, ``NO_PROXY``...): they are
    resolved for the coordinator's URL here.

    ``Accept-Encoding: identity``: asked for gzip (requests' default), Trino gzips every
    direct-protocol page, which quadruples its CPU for a large result; spooled segments are
    compressed by the protocol's own encoding (zstd, lz4).
    """
    requests_mod = import_client("requests", SERVICE)
    session: requests.Session = requests_mod.Session()
    session.trust_env = False
    session.headers["Accept-Encoding"] = "identity"
    session.verify = settings.tls_verify()
    session.proxies.update(requests_mod.utils.get_environ_proxies(settings.base_url))
    from carbon_sdk._http import bounded  # imports requests: only once it is there

    return bounded(session, settings)


_CODEC_MODULES = {"zstd": "zstandard", "lz4": "lz4"}


def _encodings(settings: TrinoSettings) -> list[str]:
    """The configured spooling encodings this reader can decode (codec module installed)."""
    from carbon_sdk._spool import ENCODINGS

    usable = []
    for encoding in settings.encoding:
        codec = encoding.partition("+")[2]
        module = _CODEC_MODULES.get(codec)
        if encoding in ENCODINGS and (module is None or importlib.util.find_spec(module)):
            usable.append(encoding)
    return usable


def _connection(settings: TrinoSettings, *, spooling: bool = True) -> Connection:
    """A connection; ``spooling=False`` asks for the direct protocol (no encoding header)."""
    settings.require()
    dbapi = import_client("trino.dbapi", SERVICE)
    client_created(settings, f"trino.dbapi connection (auth={settings.auth})")
    encodings = _encodings(settings) if spooling else []
    with _errors(settings):
        conn: Connection = dbapi.connect(
            host=settings.host,
            port=settings.port,
            http_scheme=settings.http_scheme,
            user=settings.identity(),  # None: no X-Trino-User, the token's subject is used
            auth=_authentication(settings),
            http_session=_http_session(settings),
            source=settings.source,
            catalog=settings.catalog,
            schema=settings.schema,
            session_properties=dict(settings.session_properties),
            client_tags=settings.tags() or None,
            encoding=encodings or None,
            max_attempts=settings.max_attempts,
            request_timeout=(settings.connect_timeout, settings.request_timeout),
        )
    return conn


# ---- clients --------------------------------------------------------------------------------


def connect(**overrides: Any) -> Connection:
    """A new ``trino.dbapi`` connection with the configured identity, auth, TLS and defaults.

    ``overrides`` are settings on top of the configured ones, e.g. ``connect(catalog="tpch")``.
    """
    settings = TrinoSettings.load(**overrides)
    return _connection(settings)


def cursor(**overrides: Any) -> Cursor:
    """A cursor on a new connection (see :func:`connect`)."""
    created: Cursor = connect(**overrides).cursor()
    return created


def engine(**overrides: Any) -> Engine:
    """A SQLAlchemy engine (``trino://``) whose connections come from :func:`connect`, so they
    carry the same identity, auth, TLS session and defaults."""
    settings = TrinoSettings.load(**overrides)
    settings.require()
    sqlalchemy = import_client("sqlalchemy", SERVICE)
    import_client("trino.sqlalchemy", SERVICE)  # registers the trino:// dialect
    database = "/".join(p for p in (settings.catalog, settings.schema) if p) or None
    url = sqlalchemy.URL.create(
        "trino",
        username=settings.identity(),
        host=settings.host,
        port=settings.port,
        database=database,
    )
    created: Engine = sqlalchemy.create_engine(url, creator=lambda: _connection(settings))
    return created


# ---- Trino types -> Arrow -------------------------------------------------------------------

_PRIMITIVES = {
    "boolean": "bool_",
    "tinyint": "int8",
    "smallint": "int16",
    "integer": "int32",
    "bigint": "int64",
    "real": "float32",
    "double": "float64",
    "varchar": "string",
    "char": "string",
    "json": "string",
    "varbinary": "binary",
    "date": "date32",
    "unknown": "null",
}


def _args(signature: dict[str, Any]) -> list[Any]:
    return [a["value"] for a in signature.get("arguments", [])]


def _unit(precision: int) -> str:
    return "s" if precision == 0 else "ms" if precision <= 3 else "us" if precision <= 6 else "ns"


_ZONED_TYPE = re.compile(r"^(?P<raw>timestamp|time)(?:\((?P<p>\d+)\))? with time zone$")
_SPACED_TYPE = re.compile(r"^(timestamp|time)(\(\d+\))? with time zone$|^interval \w+ to \w+$")
_QUOTED_FIELD = re.compile(r'^"(?P<name>(?:[^"]|"")*)"\s+(?P<type>.+)$', re.DOTALL)


def signature_of(type_text: str) -> dict[str, Any]:
    """The type signature (``rawType``, ``arguments``) of a Trino type as the result's column
    ``type`` text spells it (``decimal(12,2)``, ``timestamp(3) with time zone``,
    ``row(a integer, "b c" array(varchar))``), the shape :func:`arrow_type` reads."""
    text = type_text.strip()
    if zoned := _ZONED_TYPE.match(text):
        precision = zoned.group("p")
        arguments = [{"kind": "LONG", "value": int(precision)}] if precision else []
        return {"rawType": f"{zoned.group('raw')} with time zone", "arguments": arguments}
    opening = text.find("(")
    if opening < 0 or not text.endswith(")"):
        return {"rawType": text, "arguments": []}
    raw, parts = text[:opening].strip(), _split_arguments(text[opening + 1 : -1])
    if raw == "row":
        return {"rawType": raw, "arguments": [_row_field(p) for p in parts]}
    arguments = [
        {"kind": "LONG", "value": int(p)}
        if p.isdigit()
        else {"kind": "TYPE", "value": signature_of(p)}
        for p in parts
    ]
    return {"rawType": raw, "arguments": arguments}


def _split_arguments(text: str) -> list[str]:
    """``a, b(c, d), "e,f" g`` -> its top-level parts."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted  # a doubled quote toggles twice
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and char == "," and depth == 0:
            parts.append(text[start:index].strip())
            start = index + 1
    parts.append(text[start:].strip())
    return [p for p in parts if p]


def _row_field(part: str) -> dict[str, Any]:
    """One ``row(...)`` field: ``name type``, ``"quoted name" type`` or an anonymous ``type``."""
    name: str | None = None
    if quoted := _QUOTED_FIELD.match(part):
        name, part = quoted.group("name").replace('""', '"'), quoted.group("type")
    else:
        first, _, rest = part.partition(" ")
        if rest and "(" not in first and not _SPACED_TYPE.match(part):
            name, part = first, rest
    field = {"fieldName": {"name": name} if name else None, "typeSignature": signature_of(part)}
    return {"kind": "NAMED_TYPE", "value": field}


def arrow_type(signature: dict[str, Any]) -> pa.DataType:
    """The Arrow type of a Trino type signature (``typeSignature`` of a result column).

    Types Arrow has no equivalent for (time with time zone, interval year to month,
    ipaddress, geometry...) map to their text.
    """
    pa_mod = import_client("pyarrow", "tables")
    raw = signature["rawType"]
    args = _args(signature)
    if raw in _PRIMITIVES:
        primitive: pa.DataType = getattr(pa_mod, _PRIMITIVES[raw])()
        return primitive
    if raw == "decimal":
        precision, scale = int(args[0]), int(args[1])
        return pa_mod.decimal128(precision, scale)
    if raw == "timestamp":
        return pa_mod.timestamp(_unit(int(args[0]) if args else 3))
    if raw == "timestamp with time zone":
        return pa_mod.timestamp(_unit(int(args[0]) if args else 3), tz="UTC")
    if raw == "time":
        return pa_mod.time64("ns" if args and int(args[0]) > 6 else "us")
    if raw == "interval day to second":
        return pa_mod.duration("ms")
    if raw == "uuid":
        return pa_mod.uuid()
    if raw == "array":
        return pa_mod.list_(arrow_type(args[0]))
    if raw == "map":
        return pa_mod.map_(arrow_type(args[0]), arrow_type(args[1]))
    if raw == "row":
        return pa_mod.struct(
            [
                pa_mod.field(
                    (arg.get("fieldName") or {}).get("name") or f"field{i}",
                    arrow_type(arg["typeSignature"]),
                )
                for i, arg in enumerate(args)
            ]
        )
    return pa_mod.string()


_ZONED = re.compile(r"^(?P<ts>\S+ \S+) (?P<tz>\S+)$")


def _zoned_timestamps(texts: pa.Array, unit: str) -> pa.Array:
    """``timestamp with time zone`` texts (``2026-01-02 03:04:05.000 Europe/Paris``, a string
    array) as one Arrow column: in the single zone when all values share it, else as UTC
    instants."""
    pa_mod = import_client("pyarrow", "tables")
    pc = import_client("pyarrow.compute", "tables")
    parts = pc.extract_regex(texts, _ZONED.pattern)
    local = pc.struct_field(parts, [0]).cast(pa_mod.timestamp(unit))
    zones = pc.struct_field(parts, [1])
    distinct = [z for z in pc.unique(zones).to_pylist() if z is not None]
    if not distinct:
        return local.cast(pa_mod.timestamp(unit, tz="UTC"))
    options = {"ambiguous": "earliest", "nonexistent": "earliest"}
    if len(distinct) == 1:
        zoned: pa.Array = pc.assume_timezone(local, timezone=distinct[0], **options)
        return zoned
    utc = pa_mod.timestamp(unit, tz="UTC")
    result = pa_mod.nulls(len(texts), utc)
    for zone in distinct:
        instants = pc.assume_timezone(local, timezone=zone, **options).cast(utc)
        result = pc.if_else(pc.equal(zones, zone), instants, result)
    return result


def _mapped(values: Sequence[Any], signature: dict[str, Any]) -> list[Any]:
    """The trino client's own conversion of JSON values of this type to Python (its public
    row mapper, on one-column rows)."""
    mapper = import_client("trino.mapper", SERVICE)
    row_mapper = mapper.RowMapperFactory().create(
        columns=[{"typeSignature": signature}], legacy_primitive_types=False
    )
    return [row[0] for row in row_mapper.map([[v] for v in values])]


_AS_TEXT = ("decimal", "date", "timestamp", "timestamp with time zone")


def _wire_type(signature: dict[str, Any]) -> pa.DataType | None:
    """The Arrow type ``pyarrow.array`` builds straight from this type's JSON values (the
    target type itself, or string for what is cast after: see :func:`_finish`); None when the
    values need Python first (binary, uuid, nested types, text of types Arrow lacks)."""
    pa_mod = import_client("pyarrow", "tables")
    raw = signature["rawType"]
    args = _args(signature)
    if raw in _AS_TEXT:
        return pa_mod.string() if raw == "decimal" or not args or int(args[0]) <= 9 else None
    if raw in _PRIMITIVES and raw != "varbinary":
        return arrow_type(signature)
    return None


def _finish(wire: pa.Array, signature: dict[str, Any]) -> pa.Array:
    """A column built as its :func:`_wire_type`, in its Arrow type."""
    target = arrow_type(signature)
    if signature["rawType"] == "timestamp with time zone":
        return _zoned_timestamps(wire, target.unit)
    return wire if wire.type == target else wire.cast(target)


def _column(values: Sequence[Any], signature: dict[str, Any]) -> pa.Array:
    """One result column, as the server's JSON values, converted to Arrow."""
    pa_mod = import_client("pyarrow", "tables")
    target = arrow_type(signature)
    raw = signature["rawType"]
    wire = _wire_type(signature)
    if wire is not None:
        try:
            return _finish(pa_mod.array(values, wire), signature)
        except (pa_mod.ArrowInvalid, pa_mod.ArrowTypeError, TypeError):
            if raw not in ("real", "double"):
                raise
            # "NaN", "Infinity"
            return pa_mod.array([None if v is None else float(v) for v in values], target)
    if raw == "varbinary":
        return pa_mod.array([None if v is None else base64.b64decode(v) for v in values], target)
    if raw == "uuid":
        storage = [None if v is None else v.bytes for v in _mapped(values, signature)]
        return pa_mod.ExtensionArray.from_storage(target, pa_mod.array(storage, pa_mod.binary(16)))
    if pa_mod.types.is_string(target) and raw not in ("array", "map", "row"):
        return pa_mod.array([None if v is None else str(v) for v in values], target)
    python = _mapped(values, signature)
    try:
        return pa_mod.array(python, target)
    except (pa_mod.ArrowInvalid, pa_mod.ArrowTypeError, TypeError):
        # e.g. a nested type Arrow cannot take from Python objects: keep the server's JSON
        return pa_mod.array([None if v is None else json.dumps(v) for v in values])


def _struct_columns(
    rows: Sequence[Sequence[Any]], signatures: Sequence[dict[str, Any]]
) -> list[pa.Array] | None:
    """Rows given as tuples, every column with a :func:`_wire_type`: the columns of one struct
    array built from the rows as they are, finished; None otherwise, or when a value does not
    fit its wire type ("NaN" in a double column). Spares transposing the rows into columns:
    about twice as fast as column by column on ``tpch.orders``."""
    pa_mod = import_client("pyarrow", "tables")
    wires = [_wire_type(signature) for signature in signatures]
    if not rows or not isinstance(rows[0], tuple) or any(w is None for w in wires):
        return None
    struct_type = pa_mod.struct([pa_mod.field(f"f{i}", w) for i, w in enumerate(wires)])
    try:
        struct = pa_mod.array(rows, struct_type)
    except (pa_mod.ArrowInvalid, pa_mod.ArrowTypeError, TypeError):
        return None
    return [_finish(struct.field(i), signature) for i, signature in enumerate(signatures)]


def to_arrow(rows: Sequence[Sequence[Any]], columns: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows of JSON values (as the server sends them) with their result ``columns`` as a table:
    one struct array when :func:`_struct_columns` can, else column by column."""
    pa_mod = import_client("pyarrow", "tables")
    signatures = [c["typeSignature"] for c in columns]
    arrays = _struct_columns(rows, signatures)
    if arrays is None:
        transposed = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
        arrays = [_column(v, sig) for v, sig in zip(transposed, signatures, strict=True)]
    return pa_mod.Table.from_arrays(arrays, names=_unique_names([c["name"] for c in columns]))


def _unique_names(names: list[str]) -> list[str]:
    """Column names with duplicates (``select 1, 1``: both ``_col0``... or ``a, a``) suffixed."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}_{count}")
    return unique


# ---- queries --------------------------------------------------------------------------------


class _Progress:
    """A stats callback advancing a splits bar (in notebooks and terminals only)."""

    def __init__(self, update: Callable[[int], None]) -> None:
        self._update = update
        self._done = 0

    def __call__(self, stats: dict[str, Any]) -> None:
        completed = int(stats.get("completedSplits") or 0)
        if completed > self._done:
            self._update(completed - self._done)
            self._done = completed


# Spooled segments for streaming: 1-2 MB of JSON (8-16 k rows of tpch orders) instead of the
# server's 8-16 MB, so a segment being converted holds ~10 MB of Python rows, not ~80 MB.
# Configured session properties of the same names win.
STREAM_SEGMENTS = {"spooling_initial_segment_size": "1MB", "spooling_max_segment_size": "2MB"}


@contextmanager
def _running(
    settings: TrinoSettings,
    sql: str,
    params: Params,
    progress: bool | None,
    *,
    streaming: bool = False,
) -> Iterator[_Result]:
    """Execute ``sql`` on a new connection and yield its :class:`_Result`. Without parameters
    and with spooling encodings configured, the query runs on the client's segment cursor (the
    server still answers in the direct protocol when its spooling is off); ``streaming`` asks
    for small segments (:data:`STREAM_SEGMENTS`), unless the server does not know those session
    properties. An interrupt (KeyboardInterrupt) or a consumer that stops early cancels the
    query on the server."""
    sql, bound = bind(sql, params, SERVICE)
    spooling = bound is None and bool(_encodings(settings))
    with progress_bar(None, "trino", extra=SERVICE, enabled=progress, unit="splits") as update:
        used = settings
        if spooling and streaming:
            properties = {**STREAM_SEGMENTS, **settings.session_properties}
            used = settings.model_copy(update={"session_properties": properties})
        try:
            conn, cur = _execute(used, sql, bound, spooling, _Progress(update))
        except QueryError as exc:
            if used is settings or "spooling_" not in str(exc):
                raise
            conn, cur = _execute(settings, sql, bound, spooling, _Progress(update))
        finished = False
        try:
            yield _Result(settings, cur)
            finished = True
            after_statement(
                Statement(
                    SERVICE,
                    sql,
                    settings.catalog,
                    settings.schema,
                    settings.identity(),
                    cur.query_id,
                )
            )
        finally:
            if not finished:
                with suppress(Exception):
                    cur.cancel()
            conn.close()


def _execute(
    settings: TrinoSettings,
    sql: str,
    bound: list[Any] | None,
    spooling: bool,
    stats: Callable[[dict[str, Any]], None],
) -> tuple[Any, Any]:
    """A new connection and its cursor (the segment cursor when ``spooling``) running ``sql``;
    if starting fails or is interrupted, the query is cancelled and the connection closed."""
    conn: Any = _connection(settings, spooling=spooling)
    cur: Any = None
    try:
        cur = conn.cursor(
            "segment" if spooling else "row", legacy_primitive_types=True, stats_callback=stats
        )
        with _errors(settings, cur):
            cur.execute(sql, bound)
    except BaseException:  # an interrupt while it starts cancels it on the server too
        with suppress(Exception):
            if cur is not None:
                cur.cancel()
        with suppress(Exception):
            conn.close()
        raise
    return conn, cur


PROTOCOL_KEY = b"carbon.trino.protocol"
QUERY_ID_KEY = b"carbon.trino.query_id"
# Threads fetching the segments of one query() (iter_batches: 1).
SEGMENT_THREADS = min(4, os.cpu_count() or 1)


@dataclass
class _Result:
    """A running query's result, read as Arrow tables in either protocol."""

    settings: TrinoSettings
    cursor: Any
    protocol: str = "direct"

    def columns(self) -> list[dict[str, Any]]:
        """The result's columns (name and parsed type signature), from the public
        ``cursor.description``."""
        with _errors(self.settings, self.cursor):
            description = self.cursor.description or []
        return [{"name": d.name, "typeSignature": signature_of(d.type_code)} for d in description]

    def tables(self, chunk_rows: int, *, workers: int, ahead: int) -> Iterator[pa.Table]:
        """The rows as Arrow tables: one per spooled segment (fetched on ``workers`` threads,
        converted on this one, at most ``workers + ahead`` segments held), or one per
        ``chunk_rows`` rows of the direct protocol. Sets :attr:`protocol` from the first item."""
        client = import_client("trino.client", SERVICE)
        items = iter(self.cursor.fetchone, None)
        with _errors(self.settings, self.cursor):
            first = next(items, None)
        if isinstance(first, client.DecodableSegment):
            self.protocol = "spooled"
            yield from self._spooled(itertools.chain([first], items), workers, ahead)
            return
        pending = [] if first is None else [first]
        columns = self.columns()
        while True:
            with _errors(self.settings, self.cursor):
                pending.extend(itertools.islice(items, chunk_rows - len(pending)))
            if len(pending) < chunk_rows:
                break
            yield self.annotate(to_arrow(pending, columns))
            pending = []
        if pending:
            yield self.annotate(to_arrow(pending, columns))

    def _spooled(self, segments: Iterator[Any], workers: int, ahead: int) -> Iterator[pa.Table]:
        from carbon_sdk._spool import SegmentReader, SegmentUnavailable

        settings = self.settings
        reader = SegmentReader(lambda: _http_session(settings))
        columns = self.columns()
        converted = reader.read(
            segments, lambda rows: to_arrow(rows, columns), workers=workers, ahead=ahead
        )
        try:
            with _errors(settings, self.cursor), closing(converted):
                for table in converted:
                    yield self.annotate(table)
        except SegmentUnavailable as exc:
            raise ServiceError(
                SERVICE,
                settings.endpoint,
                f"query {self.cursor.query_id}: spooled {exc} (HTTP {exc.status or 'no answer'})"
                ": the segment is no longer in the server's spooling storage (expired, deleted,"
                " or the storage is unreachable from here); run the query again, or use the"
                " direct protocol: trino.encoding=[] (env CARBON_TRINO__ENCODING='[]')",
            ) from None
        finally:
            reader.close()

    def annotate(self, table: pa.Table) -> pa.Table:
        """``table`` with the protocol and query id in its schema metadata."""
        metadata = {PROTOCOL_KEY: self.protocol.encode()}
        if self.cursor.query_id:
            metadata[QUERY_ID_KEY] = str(self.cursor.query_id).encode()
        return table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})


def protocol_of(result: Any) -> str | None:
    """Which protocol brought ``result`` (a table or DataFrame of :func:`query` or
    :func:`iter_batches`): ``"spooled"`` or ``"direct"``; None if it does not say."""
    attrs = getattr(result, "attrs", None)
    if isinstance(attrs, dict) and (protocol := attrs.get(ATTRS_KEY, {}).get("protocol")):
        return str(protocol)
    schema = getattr(result, "schema", None)
    metadata = getattr(schema, "metadata", None) or {}
    value = metadata.get(PROTOCOL_KEY)
    return value.decode() if isinstance(value, bytes) else None


def _converted(table: pa.Table, as_: TableFormat, result: _Result) -> Any:
    """``convert`` keeping the protocol and query id where the format has room: Arrow schema
    metadata, pandas ``DataFrame.attrs`` (polars has neither)."""
    converted = convert(table, as_)
    attrs = getattr(converted, "attrs", None)
    if isinstance(attrs, dict):
        attrs[ATTRS_KEY] = {
            "service": SERVICE,
            "protocol": result.protocol,
            "query_id": result.cursor.query_id,
        }
    return converted


def query(
    sql: str,
    params: Params = None,
    *,
    as_: TableFormat = "pandas",
    progress: bool | None = None,
    **overrides: Any,
) -> Any:
    """Run ``sql`` and return the whole result as a pandas/polars DataFrame or Arrow table.

    Parameters are bound through a server-side prepared statement: a sequence fills ``?``, a
    mapping fills ``:name`` (``query("select * from t where id = :id", {"id": 42})``; see
    docs/sql-parameters.md). Types are preserved: decimal(p, s),
    timestamp with time zone (tz-aware), date, varbinary as bytes, array/map/row as
    list/map/struct columns, NULLs as missing values. Ctrl-C (a notebook interrupt) cancels the
    query on the server. ``progress``: a splits bar; default on in notebooks and terminals.
    The protocol used (spooled or direct) and the query id are in the Arrow schema metadata or
    the DataFrame's ``attrs``; :func:`protocol_of` reads them.
    """
    check_format(as_)
    started = time.perf_counter()
    settings = TrinoSettings.load(**overrides)
    with _running(settings, sql, params, progress) as result:
        parts = list(result.tables(_CHUNK_ROWS, workers=SEGMENT_THREADS, ahead=2))
        if not parts:
            parts.append(result.annotate(to_arrow([], result.columns())))
    query_id = result.cursor.query_id
    return report(
        _converted(_concat(parts), as_, result),
        SERVICE,
        started,
        query_id,
        settings.query_link(query_id),
        protocol=result.protocol,
    )


_CHUNK_ROWS = 100_000


def _concat(parts: list[pa.Table]) -> pa.Table:
    """One table from chunks; timestamp-with-zone columns whose chunks ended up in different
    zones are unified as UTC instants."""
    pa_mod = import_client("pyarrow", "tables")
    if len(parts) == 1:
        return parts[0]
    first = parts[0].schema
    if any(p.schema != first for p in parts[1:]):
        fields = []
        for index, field in enumerate(first):
            types = {p.schema.field(index).type for p in parts}
            mixed = len(types) > 1 and all(pa_mod.types.is_timestamp(t) for t in types)
            utc = pa_mod.timestamp(field.type.unit, tz="UTC") if mixed else field.type
            fields.append(field.with_type(utc))
        schema = pa_mod.schema(fields)
        parts = [p.cast(schema) for p in parts]
    return pa_mod.concat_tables(parts)


def iter_batches(
    sql: str,
    params: Params = None,
    *,
    batch_rows: int = 100_000,
    as_: TableFormat = "arrow",
    progress: bool | None = False,
    **overrides: Any,
) -> Iterator[Any]:
    """Stream a large result in chunks of ``batch_rows`` rows (the last may be smaller), each
    as ``as_`` (an Arrow table by default). Memory stays bounded: one batch being filled plus
    at most two spooled segments (or one direct-protocol chunk) in flight; stopping early
    (``break``) cancels the query on the server."""
    check_format(as_)
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    settings = TrinoSettings.load(**overrides)
    with _running(settings, sql, params, progress, streaming=True) as result:
        pending: list[pa.Table] = []
        held = 0
        for table in result.tables(batch_rows, workers=1, ahead=1):
            pending.append(table)
            held += table.num_rows
            while held >= batch_rows:
                whole = _concat(pending)
                yield _converted(whole.slice(0, batch_rows), as_, result)
                rest = whole.slice(batch_rows)
                pending, held = ([rest] if rest.num_rows else []), rest.num_rows
        if held:
            yield _converted(_concat(pending), as_, result)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def tables(catalog: str | None = None, schema: str | None = None, **overrides: Any) -> Any:
    """The tables and views of ``catalog`` (default: the configured one), optionally of one
    ``schema``, as a pandas DataFrame (``table_catalog, table_schema, table_name, table_type``)."""
    settings = TrinoSettings.load(**overrides)
    catalog = catalog or settings.catalog
    if not catalog:
        settings.require("catalog")
    where = "where table_schema <> 'information_schema'"
    if schema:
        where = f"where table_schema = {_literal(schema)}"
    sql = (
        "select table_catalog, table_schema, table_name, table_type "
        f"from {_identifier(str(catalog))}.information_schema.tables {where} "
        "order by table_schema, table_name"
    )
    return query(sql, as_="pandas", progress=False, **overrides)


def describe(table: str, **overrides: Any) -> Any:
    """The columns of ``table`` (``name``, ``catalog.schema.name`` or quoted parts) as a pandas
    DataFrame: ``Column, Type, Extra, Comment``."""
    if not re.fullmatch(
        r'(("[^"]*(""[^"]*)*")|[\w$@]+)(\.(("[^"]*(""[^"]*)*")|[\w$@]+)){0,2}', table
    ):
        raise ValueError(f"not a table name: {table!r}")
    return query(f"describe {table}", as_="pandas", progress=False, **overrides)


# ---- doctor ---------------------------------------------------------------------------------


def server_info(settings: TrinoSettings) -> dict[str, Any]:
    """``GET /v1/info`` (no auth needed): version, ``starting``, uptime."""
    settings.require()
    session = _http_session(settings)
    with _errors(settings), session:
        response = session.get(
            f"{settings.base_url}/v1/info",
            timeout=(settings.connect_timeout, settings.request_timeout),
        )
        response.raise_for_status()
        info: dict[str, Any] = response.json()
    return info


def check(settings: TrinoSettings) -> str:
    """Doctor: ``/v1/info`` (version, still starting?), then ``select current_user``."""
    info = server_info(settings)
    version = (info.get("nodeVersion") or {}).get("version", "?")
    if info.get("starting"):
        raise Unreachable(SERVICE, settings.endpoint, f"Trino {version} is still starting")
    with _running(settings, "select current_user", None, False) as result:
        users = [u for t in result.tables(1, workers=1, ahead=1) for u in t.column(0).to_pylist()]
    user = users[0] if users else "?"
    where = "/".join(p for p in (settings.catalog, settings.schema) if p)
    return f"Trino {version} as {user} ({settings.auth} auth)" + (f" on {where}" if where else "")
