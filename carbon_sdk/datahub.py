"""DataHub: settings, configured clients (GMS over REST, DataHub Lite), metadata helpers,
lineage recorded as a side effect of Trino statements, and the doctor check.

Two backends behind one API, chosen by ``datahub.backend``:

- ``gms`` (production): DataHub's metadata service over REST, through acryl-datahub's
  ``DatahubRestEmitter`` (:func:`emitter`) and ``DataHubGraph`` (:func:`graph`), with the token,
  timeouts and TLS settings applied.
- ``lite`` (local development): DataHub Lite, DataHub's own embedded store (a SQLite file,
  :func:`lite`), for machines where no GMS runs. Its free-text search matches URNs and names only.

The helpers (:func:`search`, :func:`schema`, :func:`emit_lineage`, :func:`describe`,
:func:`upstreams`, :func:`column_lineage`) work the same on both.

With :func:`record_lineage` (or ``datahub.record_lineage: true``), every CREATE TABLE AS,
INSERT and MERGE run through :mod:`carbon_sdk.trino` is parsed with acryl-datahub's SQL lineage
parser and emitted as upstream -> downstream lineage (column level where it can), with the
notebook as the data job. Emission happens on a thread of its own behind a bounded queue: a
DataHub outage never fails or slows a query (statements that do not fit are dropped, counted
in :func:`lineage_stats`).

acryl-datahub is imported only inside the functions that need it (its REST emitter alone takes
about 0.4 s to import).
"""

from __future__ import annotations

import atexit
import getpass
import json
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from carbon_sdk._classify import ErrorTable, Rule, fix_for
from carbon_sdk._hooks import Statement
from carbon_sdk._lazy import import_client
from carbon_sdk._log import client_created, logger
from carbon_sdk._redact import redact, remember
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
from carbon_sdk.settings.values import http_url

if TYPE_CHECKING:
    import requests
    from datahub.emitter.rest_emitter import DatahubRestEmitter
    from datahub.ingestion.graph.client import DataHubGraph
    from datahub.lite.lite_local import DataHubLiteLocal

SERVICE = "datahub"
Backend = Literal["gms", "lite"]
LITE_DEFAULT = Path("~/.datahub/lite/datahub.db")
_TOKEN_FIX = "check datahub.token (env CARBON_DATAHUB__TOKEN or DATAHUB_GMS_TOKEN)"  # noqa: S105 - a hint, not a secret
_URL_FIX = "is datahub.gms_url the GMS endpoint (http://<gms>:8080, or https://<frontend>/api/gms)?"
log = logger(SERVICE)


class DatahubSettings(ServiceSettings):
    """Where the platform's DataHub is (GMS, or a local DataHub Lite store) and the token."""

    service: ClassVar[str] = SERVICE
    required: ClassVar[tuple[str, ...]] = ("gms_url",)
    endpoint_fields: ClassVar[tuple[str, ...]] = ("gms_url",)
    env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {
        "gms_url": ("DATAHUB_GMS_URL",),
        "token": ("DATAHUB_GMS_TOKEN",),
    }

    backend: Backend = Field(
        "gms", description="gms (DataHub's metadata service over REST) or lite (a local store)."
    )
    gms_url: str | None = Field(
        None,
        description="GMS base URL, e.g. http://datahub-gms:8080 or https://host/api/gms "
        "(a bare host:port means http).",
    )
    token: SecretStr | None = Field(None, description="DataHub access token (sent as Bearer).")
    lite_path: Path | None = Field(
        None, description="DataHub Lite store file for backend=lite (default ~/.datahub/lite/)."
    )
    env: str = Field("PROD", description="DataHub environment (fabric) of dataset URNs.")
    platform: str = Field("trino", description="Platform of dataset names given without a URN.")
    platform_instance: str | None = Field(
        None, description="Platform instance in dataset URNs, if the platform uses one."
    )
    record_lineage: bool = Field(
        False, description="Record lineage of Trino CTAS/INSERT/MERGE statements (async)."
    )
    lineage_queue: int = Field(
        256, ge=1, le=100_000, description="Statements waiting for lineage; more are dropped."
    )
    lineage_timeout: float = Field(
        10.0, gt=0, le=600, description="Seconds per lineage request to GMS (background only)."
    )

    @field_validator("gms_url")
    @classmethod
    def _valid_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if "://" not in url:  # a bare host[:port] is plain http, as GMS serves in a cluster
            url = f"http://{url}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("not an http(s) URL")
        if parts.username or parts.password:
            raise ValueError("must not contain credentials (set datahub.token)")
        return http_url(url)

    @property
    def lite_file(self) -> Path:
        """The DataHub Lite store file (``lite_path``, else DataHub's default)."""
        return (self.lite_path or LITE_DEFAULT).expanduser()

    @property
    def endpoint(self) -> str:
        """The GMS URL, or ``lite:<file>`` for backend=lite."""
        return f"lite:{self.lite_file}" if self.backend == "lite" else str(self.gms_url)

    @property
    def configured(self) -> bool:
        """GMS needs ``gms_url``; Lite works with its default file."""
        return self.backend == "lite" or self.gms_url is not None

    def require(self, *names: str) -> None:
        """As the base, except that backend=lite requires nothing by default."""
        if names or self.backend == "gms":
            super().require(*names)


Settings = DatahubSettings

# ---- errors ---------------------------------------------------------------------------------

ERRORS = ErrorTable(
    Rule(
        TLSError,
        "check datahub.gms_url's scheme and datahub.ca_bundle",
        types=("requests.exceptions.SSLError",),
        text=("certificate verify", "ssl:", "wrong version number"),
    ),
    Rule(
        Unreachable,
        "is GMS running? check datahub.gms_url and datahub.connect_timeout",
        types=("requests.exceptions.ConnectionError", "requests.exceptions.Timeout"),
        text=(
            "no answer within",
            "refused",
            "timed out",
            "name or service not known",
            "failed to resolve",
        ),
    ),
    Rule(AuthFailed, _TOKEN_FIX, codes=("401", "403"), text=("authentication error",)),
    Rule(NotFound, _URL_FIX, codes=("404",), text=("status_code: 404",)),
    Rule(ServiceError, _URL_FIX, text=("frontend service instead of the gms",)),
    Rule(Unreachable, "is GMS still starting?", codes=("502", "503", "504")),
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> str | None:
    for cause in _chain(exc):
        response = getattr(cause, "response", None)
        if response is not None and getattr(response, "status_code", None):
            return str(response.status_code)
        info = cause.args[1] if len(cause.args) > 1 else None
        if isinstance(info, dict) and isinstance(info.get("status"), int):
            return str(info["status"])
    match = re.search(r"status_code: (\d{3})", str(exc))
    return match.group(1) if match else None


def _short(text: str) -> str:
    """The reason of a urllib3 retry message, else the first line."""
    match = re.search(r"\(Caused by \w+\((.*)\)\)", text)
    reason = match.group(1) if match else text.splitlines()[0]
    return re.sub(r"<urllib3[^>]*>: ", "", reason).strip("'\" ")


def _message(exc: BaseException) -> str:
    """The text of an error; acryl's ``OperationalError(message, info)`` as one sentence."""
    args = exc.args
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], dict):
        detail = str(args[1].get("message") or "")
        return args[0] if detail in args[0] else f"{args[0]}: {detail}".rstrip(": ")
    return re.sub(r" for url: \S+", "", str(exc)).strip()  # requests' HTTPError: the URL is long


def classify(exc: BaseException, settings: DatahubSettings) -> ServiceError:
    """Turn an acryl-datahub or requests error into the carbon-sdk error saying what went wrong
    (by type and HTTP status first, see :data:`ERRORS`); no credential appears in it."""
    status = _status(exc)
    rule = None
    for cause in _chain(exc):
        rule = ERRORS.match(cause, status)
        if rule is not None:
            break
    causes = [c for c in _chain(exc) if str(c).strip()]
    text = _message(causes[-1] if rule is not None and rule.types and causes else exc)
    first = _short(redact(text or type(exc).__name__, settings.secret_values()))
    if status and status not in first:
        first = f"HTTP {status}: {first}"
    if rule is None:
        return ServiceError(SERVICE, settings.endpoint, first)
    error = cast("type[ServiceError]", rule.error)
    return error(SERVICE, settings.endpoint, f"{first} ({fix_for(rule, settings, text)})")


@contextmanager
def _errors(settings: DatahubSettings) -> Iterator[None]:
    common = import_client("datahub.configuration.common", SERVICE)
    requests_mod = import_client("requests", SERVICE)
    try:
        yield
    except CarbonError:
        raise
    except (common.MetaError, requests_mod.RequestException) as exc:
        raise classify(exc, settings) from None


# ---- clients --------------------------------------------------------------------------------


class _Redacting(logging.Filter):
    """Scrubs tokens out of acryl-datahub's own debug lines (it logs curl commands with the
    ``Authorization`` header when a request fails)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.msg, record.args = record.getMessage(), None
        record.msg = redact(str(record.msg), ())
        return True


_FILTER = _Redacting()


def _gms(settings: DatahubSettings) -> dict[str, Any]:
    """The client arguments shared by the emitter and the graph (token remembered)."""
    if settings.backend != "gms":
        raise ConfigurationError(
            "datahub.backend is lite: emitter() and graph() talk to GMS; use datahub.lite(), "
            "or set datahub.backend=gms (env CARBON_DATAHUB__BACKEND)"
        )
    settings.require("gms_url")
    token = settings.secret("token")
    remember(token)
    for name in ("datahub.emitter.rest_emitter", "datahub.ingestion.graph.client"):
        logging.getLogger(name).addFilter(_FILTER)
    return {
        "token": token or None,
        "ca_certificate_path": str(settings.ca_bundle) if settings.ca_bundle else None,
        "disable_ssl_verification": not settings.verify,
        "openapi_ingestion": False,  # the Rest.li endpoints every GMS version serves
    }


def _bounded(client: DatahubRestEmitter, settings: DatahubSettings, timeout: float | None) -> None:
    """Replace the acryl client's retrying transport adapter with the SDK's (``session`` is its
    public requests session): acryl retries every method, writes included, with a backoff of
    2 s, 4 s... that no deadline bounds, and waits ``timeout_sec`` for the first byte. Now the
    first answer must come within ``connect_timeout``, reads (GET, GraphQL queries) are
    repeated after a transient failure within the call's deadline, writes are sent once, or
    again only after a refused connection, which sent nothing (see
    :class:`carbon_sdk._http.DeadlineAdapter`)."""
    from carbon_sdk._http import bounded

    if timeout is not None:
        settings = settings.model_copy(
            update={
                "connect_timeout": min(settings.connect_timeout, timeout),
                "request_timeout": min(settings.request_timeout, timeout),
            }
        )
    bounded(client.session, settings, idempotent=_reads)


def _reads(request: requests.PreparedRequest) -> bool:
    """DataHub's reads, safe to send again: GET (Rest.li aspects, ``/config``) and GraphQL
    queries (``POST /api/graphql`` of a ``query``, not a ``mutation``)."""
    from carbon_sdk._http import safe_method

    if safe_method(request):
        return True
    if not str(request.url or "").split("?", 1)[0].endswith("/api/graphql"):
        return False
    if not isinstance(request.body, str | bytes):  # a stream: not a GraphQL query
        return False
    try:
        body = json.loads(request.body)
    except ValueError:
        return False
    text = str(body.get("query") or "").lstrip() if isinstance(body, dict) else ""
    return text.startswith(("query", "{"))


def emitter(**overrides: Any) -> DatahubRestEmitter:
    """A ``DatahubRestEmitter`` for GMS with the token, timeouts and TLS settings applied.

    ``overrides`` are settings on top of the configured ones, e.g. ``emitter(token=...)``.
    """
    settings = DatahubSettings.load(**overrides)
    return _emitter(settings)


def _emitter(settings: DatahubSettings, timeout: float | None = None) -> DatahubRestEmitter:
    kwargs = _gms(settings)
    rest = import_client("datahub.emitter.rest_emitter", SERVICE)
    client_created(settings, "DatahubRestEmitter")
    with _errors(settings):
        created = rest.DatahubRestEmitter(
            gms_server=settings.gms_url,
            connect_timeout_sec=min(settings.connect_timeout, timeout or settings.connect_timeout),
            read_timeout_sec=min(settings.request_timeout, timeout or settings.request_timeout),
            **kwargs,
        )
    _bounded(created, settings, timeout)
    return cast("DatahubRestEmitter", created)


def graph(**overrides: Any) -> DataHubGraph:
    """A ``DataHubGraph`` (reads, search, GraphQL) for GMS, configured like :func:`emitter`."""
    settings = DatahubSettings.load(**overrides)
    return _graph(settings)


def _graph(settings: DatahubSettings, timeout: float | None = None) -> DataHubGraph:
    kwargs = _gms(settings)
    client = import_client("datahub.ingestion.graph.client", SERVICE)
    config = import_client("datahub.ingestion.graph.config", SERVICE)
    client_created(settings, "DataHubGraph")
    with _errors(settings):
        created = client.DataHubGraph(
            config.DatahubClientConfig(
                server=settings.gms_url,
                timeout_sec=min(settings.request_timeout, timeout or settings.request_timeout),
                **kwargs,
            )
        )
    _bounded(created, settings, timeout)
    return cast("DataHubGraph", created)


def lite(**overrides: Any) -> DataHubLiteLocal[Any]:
    """The DataHub Lite store (``datahub.lite_path``, created on first use); close it after use.

    Works whatever ``datahub.backend`` says, e.g. to inspect a local store."""
    settings = DatahubSettings.load(**overrides)
    return _lite(settings)


def _lite(settings: DatahubSettings, read_only: bool = False) -> DataHubLiteLocal[Any]:
    util = import_client("datahub.lite.lite_util", SERVICE)
    path = settings.lite_file
    client_created(settings, f"DataHub Lite store{' (read only)' if read_only else ''}")
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        store: DataHubLiteLocal[Any] = util.get_datahub_lite(
            {"type": "sqlite", "config": {"file": str(path), "read_only": read_only}}
        )
    except Exception as exc:  # sqlite3.Error, OSError: the file cannot be opened or created
        raise ConfigurationError(
            f"datahub: cannot open the DataHub Lite store {path}: {type(exc).__name__}: {exc} "
            "(check datahub.lite_path, env CARBON_DATAHUB__LITE_PATH)"
        ) from None
    return store


# ---- one store API over both backends -------------------------------------------------------


class _Store:
    """Write aspects, read one aspect, search: what the helpers need from a backend."""

    def emit(self, mcps: Sequence[Any]) -> None:
        raise NotImplementedError

    def aspect(self, urn: str, aspect_class: Any) -> Any:
        raise NotImplementedError

    def search(self, query: str, entity: str, limit: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Gms(_Store):
    def __init__(self, client: DataHubGraph) -> None:
        self.client = client

    def emit(self, mcps: Sequence[Any]) -> None:
        if len(mcps) == 1:
            self.client.emit_mcp(mcps[0])
        elif mcps:
            self.client.emit_mcps(list(mcps))

    def aspect(self, urn: str, aspect_class: Any) -> Any:
        return self.client.get_aspect(urn, aspect_class)

    def search(self, query: str, entity: str, limit: int) -> list[dict[str, Any]]:
        data = self.client.execute_graphql(
            _SEARCH,
            variables={
                "input": {
                    "types": [_graphql_type(entity)],
                    "query": query or "*",
                    "start": 0,
                    "count": limit,
                }
            },
            operation_name="carbonSearch",
        )
        rows = []
        for hit in (data.get("searchAcrossEntities") or {}).get("searchResults") or []:
            found = hit.get("entity") or {}
            properties = found.get("properties") or {}
            rows.append(
                {
                    "urn": found.get("urn"),
                    "name": properties.get("name") or found.get("name") or _name(found["urn"]),
                    "platform": (found.get("platform") or {}).get("name"),
                    "description": properties.get("description"),
                }
            )
        return rows

    def close(self) -> None:
        self.client.close()


_SEARCH = """
query carbonSearch($input: SearchAcrossEntitiesInput!) {
  searchAcrossEntities(input: $input) {
    total
    searchResults {
      entity {
        urn
        type
        ... on Dataset { name platform { name } properties { name description } }
      }
    }
  }
}
"""
_WHOAMI = "query carbonWhoAmI { me { corpUser { urn username } } }"


class _Lite(_Store):
    def __init__(self, store: DataHubLiteLocal[Any]) -> None:
        self.store = store

    def emit(self, mcps: Sequence[Any]) -> None:
        for mcp in mcps:
            self.store.write(mcp)

    def aspect(self, urn: str, aspect_class: Any) -> Any:
        name = aspect_class.ASPECT_NAME
        found = self.store.get(urn, [name], typed=True)
        return (found or {}).get(name)

    def search(self, query: str, entity: str, limit: int) -> list[dict[str, Any]]:
        flavor = import_client("datahub.lite.lite_local", SERVICE).SearchFlavor
        schema = import_client("datahub.metadata.schema_classes", SERVICE)
        urns: list[str] = []
        for hit in self.store.search(query, flavor.FREE_TEXT, snippet=False):
            if hit.id.startswith(f"urn:li:{entity}:") and hit.id not in urns:
                urns.append(hit.id)
            if len(urns) >= limit:
                break
        rows = []
        for urn in urns:
            properties = (
                self.aspect(urn, schema.DatasetPropertiesClass) if entity == "dataset" else None
            )
            rows.append(
                {
                    "urn": urn,
                    "name": (properties.name if properties else None) or _name(urn),
                    "platform": _platform(urn),
                    "description": properties.description if properties else None,
                }
            )
        return rows

    def close(self) -> None:
        self.store.close()


@contextmanager
def _store(settings: DatahubSettings, timeout: float | None = None) -> Iterator[_Store]:
    """The configured backend, closed afterwards; client errors become carbon-sdk errors."""
    opened: _Store = (
        _Lite(_lite(settings)) if settings.backend == "lite" else _Gms(_graph(settings, timeout))
    )
    try:
        with _errors(settings):
            yield opened
    finally:
        opened.close()


def _graphql_type(entity: str) -> str:
    """``dataset`` -> ``DATASET``, ``dataJob`` -> ``DATA_JOB``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", entity).upper()


def _name(urn: str) -> str:
    """The dataset name inside a dataset URN (else the URN)."""
    match = re.fullmatch(r"urn:li:dataset:\(urn:li:dataPlatform:[^,]+,(.*),[^,]+\)", urn)
    return match.group(1) if match else urn


def _platform(urn: str) -> str | None:
    match = re.search(r"urn:li:dataPlatform:([^,)]+)", urn)
    return match.group(1) if match else None


# ---- helpers --------------------------------------------------------------------------------


def dataset_urn(
    name: str, *, platform: str | None = None, env: str | None = None, **overrides: Any
) -> str:
    """The dataset URN of ``name`` (``catalog.schema.table`` for Trino), e.g.
    ``urn:li:dataset:(urn:li:dataPlatform:trino,iceberg.analytics.orders,PROD)``.

    A URN is returned unchanged. ``platform`` and ``env`` default to ``datahub.platform`` and
    ``datahub.env``; Trino names are lower-cased, as DataHub's Trino source and SQL parser do.
    """
    if name.startswith("urn:li:"):
        return name
    settings = DatahubSettings.load(**overrides)
    platform = platform or settings.platform
    if not name or any(c in name for c in ",()"):
        raise ValueError(f"not a dataset name: {name!r}")
    if platform == "trino":
        name = name.lower()
    if settings.platform_instance:
        name = f"{settings.platform_instance}.{name}"
    return f"urn:li:dataset:(urn:li:dataPlatform:{platform},{name},{env or settings.env})"


def _urns(datasets: str | Sequence[str], settings: DatahubSettings) -> list[str]:
    names = [datasets] if isinstance(datasets, str) else list(datasets)
    return [dataset_urn(n, platform=settings.platform, env=settings.env) for n in names]


def search(query: str = "*", entity: str = "dataset", *, limit: int = 100, **overrides: Any) -> Any:
    """Entities matching ``query`` as a pandas DataFrame: ``urn, name, platform, description``.

    On GMS this is DataHub's search (GraphQL ``searchAcrossEntities``); on Lite a free-text
    match of URNs and names only. ``entity``: ``dataset``, ``dataJob``, ``dataFlow``...
    """
    pd = import_client("pandas", "tables")
    settings = DatahubSettings.load(**overrides)
    with _store(settings) as store:
        rows = store.search(
            "" if query == "*" and settings.backend == "lite" else query, entity, limit
        )
    return pd.DataFrame(rows, columns=["urn", "name", "platform", "description"])


def schema(dataset: str, **overrides: Any) -> Any:
    """The columns DataHub knows of ``dataset`` (a name or URN) as a pandas DataFrame:
    ``field, type, nullable, description``. Raises NotFound if DataHub has no schema for it."""
    pd = import_client("pandas", "tables")
    schema_classes = import_client("datahub.metadata.schema_classes", SERVICE)
    settings = DatahubSettings.load(**overrides)
    (urn,) = _urns(dataset, settings)
    with _store(settings) as store:
        found = store.aspect(urn, schema_classes.SchemaMetadataClass)
    if found is None:
        raise NotFound(SERVICE, settings.endpoint, f"no schema for {urn} in DataHub")
    rows = [
        {
            "field": f.fieldPath,
            "type": f.nativeDataType,
            "nullable": f.nullable,
            "description": f.description,
        }
        for f in found.fields
    ]
    return pd.DataFrame(rows, columns=["field", "type", "nullable", "description"])


ColumnLineage = Mapping[str, Sequence[tuple[str, str]]]
"""``{downstream column: [(upstream dataset, upstream column), ...]}``."""


def _lineage_aspect(
    upstreams: list[str],
    downstream: str,
    columns: ColumnLineage | None,
    existing: Any = None,
    query: str | None = None,
) -> Any:
    m = import_client("datahub.metadata.schema_classes", SERVICE)
    builder = import_client("datahub.emitter.mce_builder", SERVICE)
    stamp = m.AuditStampClass(time=int(time.time() * 1000), actor=builder.make_user_urn(_user()))
    kept = [u for u in (existing.upstreams if existing else []) if u.dataset not in upstreams]
    fine = []
    for column, sources in (columns or {}).items():
        fine.append(
            m.FineGrainedLineageClass(
                upstreamType=m.FineGrainedLineageUpstreamTypeClass.FIELD_SET,
                downstreamType=m.FineGrainedLineageDownstreamTypeClass.FIELD,
                upstreams=[builder.make_schema_field_urn(dataset_urn(d), c) for d, c in sources],
                downstreams=[builder.make_schema_field_urn(downstream, column)],
                query=query,
            )
        )
    replaced = {d for f in fine for d in f.downstreams}
    old_fine = [
        f
        for f in (existing.fineGrainedLineages or [] if existing else [])
        if not set(f.downstreams or []) & replaced
    ]
    return m.UpstreamLineageClass(
        upstreams=kept
        + [
            m.UpstreamClass(dataset=u, type=m.DatasetLineageTypeClass.TRANSFORMED, auditStamp=stamp)
            for u in upstreams
        ],
        fineGrainedLineages=(old_fine + fine) or None,
    )


def emit_lineage(
    upstreams: str | Sequence[str],
    downstream: str,
    *,
    columns: ColumnLineage | None = None,
    merge: bool = False,
    **overrides: Any,
) -> str:
    """Record that ``downstream`` is derived from ``upstreams`` (names or URNs); returns the
    downstream URN.

    ``columns`` adds column-level lineage: ``{"total": [("iceberg.sales.orders", "amount")]}``.
    The upstreams replace those recorded before, unless ``merge=True`` (then they are added).
    """
    settings = DatahubSettings.load(**overrides)
    ups = _urns(upstreams, settings)
    (down,) = _urns(downstream, settings)
    mcp_mod = import_client("datahub.emitter.mcp", SERVICE)
    m = import_client("datahub.metadata.schema_classes", SERVICE)
    with _store(settings) as store:
        existing = store.aspect(down, m.UpstreamLineageClass) if merge else None
        aspect = _lineage_aspect(ups, down, columns, existing)
        store.emit([mcp_mod.MetadataChangeProposalWrapper(entityUrn=down, aspect=aspect)])
    return down


def upstreams(dataset: str, **overrides: Any) -> list[str]:
    """The URNs DataHub records as direct upstreams of ``dataset`` (a name or URN)."""
    m = import_client("datahub.metadata.schema_classes", SERVICE)
    settings = DatahubSettings.load(**overrides)
    (urn,) = _urns(dataset, settings)
    with _store(settings) as store:
        found = store.aspect(urn, m.UpstreamLineageClass)
    return [u.dataset for u in found.upstreams] if found else []


def column_lineage(dataset: str, **overrides: Any) -> Any:
    """The column-level lineage DataHub records for ``dataset`` as a pandas DataFrame:
    ``column, upstream, upstream_column`` (one row per source column)."""
    pd = import_client("pandas", "tables")
    m = import_client("datahub.metadata.schema_classes", SERVICE)
    settings = DatahubSettings.load(**overrides)
    (urn,) = _urns(dataset, settings)
    with _store(settings) as store:
        found = store.aspect(urn, m.UpstreamLineageClass)
    rows = []
    for fine in (found.fineGrainedLineages or []) if found else []:
        for down in fine.downstreams or []:
            for up in fine.upstreams or []:
                up_dataset, up_column = _field(up)
                rows.append(
                    {
                        "column": _field(down)[1],
                        "upstream": up_dataset,
                        "upstream_column": up_column,
                    }
                )
    return pd.DataFrame(rows, columns=["column", "upstream", "upstream_column"])


def _field(schema_field_urn: str) -> tuple[str, str]:
    """``urn:li:schemaField:(<dataset urn>,<column>)`` -> (dataset urn, column)."""
    inner = schema_field_urn.removeprefix("urn:li:schemaField:(").removesuffix(")")
    dataset, _, column = inner.rpartition(",")
    return dataset, column


def describe(
    dataset: str,
    *,
    description: str | None = None,
    tags: Sequence[str] = (),
    **overrides: Any,
) -> str:
    """Set ``dataset``'s description and add ``tags`` (kept: tags it already has); returns its
    URN. Both are written in one batch, as DataHub's UI edits (editable properties)."""
    if description is None and not tags:
        raise ValueError("describe() needs a description or tags")
    settings = DatahubSettings.load(**overrides)
    (urn,) = _urns(dataset, settings)
    mcp_mod = import_client("datahub.emitter.mcp", SERVICE)
    m = import_client("datahub.metadata.schema_classes", SERVICE)
    builder = import_client("datahub.emitter.mce_builder", SERVICE)
    with _store(settings) as store:
        mcps = []
        if description is not None:
            aspect = store.aspect(urn, m.EditableDatasetPropertiesClass)
            aspect = aspect or m.EditableDatasetPropertiesClass()
            aspect.description = description
            mcps.append(mcp_mod.MetadataChangeProposalWrapper(entityUrn=urn, aspect=aspect))
        if tags:
            current = store.aspect(urn, m.GlobalTagsClass) or m.GlobalTagsClass(tags=[])
            have = {t.tag for t in current.tags}
            for tag in tags:
                tag_urn = tag if tag.startswith("urn:li:tag:") else builder.make_tag_urn(tag)
                if tag_urn not in have:
                    current.tags.append(m.TagAssociationClass(tag=tag_urn))
                    have.add(tag_urn)
            mcps.append(mcp_mod.MetadataChangeProposalWrapper(entityUrn=urn, aspect=current))
        store.emit(mcps)
    return urn


# ---- lineage recorded from Trino statements -------------------------------------------------

_WRITES = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(create|insert|merge)\b", re.I | re.S)
_explicit: bool | None = None


def record_lineage(enabled: bool = True) -> None:
    """Record lineage of every CREATE TABLE AS, INSERT and MERGE run through
    :mod:`carbon_sdk.trino` from now on (``False``: stop; default: ``datahub.record_lineage``).

    Statements are parsed and emitted in the background; see :func:`flush` and
    :func:`lineage_stats`. Only :func:`carbon_sdk.trino.query` and ``iter_batches`` are seen,
    not statements run on a DB-API cursor of your own.
    """
    global _explicit  # noqa: PLW0603 - a process-wide switch
    _explicit = enabled


def _enabled() -> bool:
    if _explicit is not None:
        return _explicit
    try:
        return DatahubSettings.load().record_lineage
    except CarbonError:
        return False


def statement_hook(statement: Statement) -> None:
    """Called by :mod:`carbon_sdk._hooks` after each statement: queue it if it writes a table
    and lineage recording is on. Never blocks and never raises."""
    if statement.service != "trino" or not _WRITES.match(statement.sql) or not _enabled():
        return
    _recorder().submit(_Job(statement, _notebook(), _user()))


def _user() -> str:
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def _notebook() -> str:
    """The running notebook's path (Jupyter sets ``JPY_SESSION_NAME`` in kernels), else the
    script's, else ``python``."""
    path = os.environ.get("JPY_SESSION_NAME")
    if not path:
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython else None
        path = (shell.user_ns.get("__session__") if shell is not None else None) or None
    if not path and sys.argv and sys.argv[0] and not sys.argv[0].endswith("ipykernel_launcher.py"):
        path = sys.argv[0]
    return str(path or "python")


@dataclass(frozen=True)
class _Job:
    statement: Statement
    notebook: str
    user: str
    at: float = field(default_factory=time.time)


@dataclass
class LineageStats:
    """What the lineage recorder did in this process.

    Attributes:
        recorded: statements whose lineage was emitted.
        skipped: statements with no table lineage (e.g. INSERT ... VALUES) or not parsed.
        failed: statements whose emission failed (DataHub down, rejected...).
        dropped: statements not queued because the queue was full.
        pending: statements waiting or being processed.
        last_error: the last failure, without credentials.
    """

    recorded: int = 0
    skipped: int = 0
    failed: int = 0
    dropped: int = 0
    pending: int = 0
    last_error: str | None = None


class _Recorder:
    """A bounded queue and one daemon thread that parses and emits lineage."""

    def __init__(self) -> None:
        self.stats = LineageStats()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.Queue[_Job] | None = None
        self._thread: threading.Thread | None = None

    def submit(self, job: _Job) -> None:
        with self._lock:
            if self._queue is None:
                try:
                    size = DatahubSettings.load().lineage_queue
                except CarbonError:
                    size = 256
                self._queue = queue.Queue(maxsize=size)
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                self.stats.dropped += 1
                return
            self.stats.pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="carbon-sdk-datahub-lineage", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            outcome, error = "failed", None
            try:
                outcome = _record(job)
            except CarbonError as exc:
                error = str(exc)
            except Exception as exc:  # never let the thread die
                error = f"{type(exc).__name__}: {exc}"
            if error:
                error = redact(error, ())
                log.warning(
                    "lineage of a %s statement not recorded: %s", job.statement.service, error
                )
            with self._lock:
                setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
                if error:
                    self.stats.last_error = error
                self.stats.pending -= 1
                self._idle.notify_all()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.stats.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True


_RECORDER: _Recorder | None = None
_RECORDER_LOCK = threading.Lock()


def _recorder() -> _Recorder:
    global _RECORDER  # noqa: PLW0603
    with _RECORDER_LOCK:
        if _RECORDER is None:
            _RECORDER = _Recorder()
            atexit.register(_RECORDER.flush, 5.0)
        return _RECORDER


def flush(timeout: float = 30.0) -> bool:
    """Wait until recorded lineage has been emitted (or failed); False if ``timeout`` passed."""
    return _recorder().flush(timeout)


def lineage_stats() -> LineageStats:
    """A copy of the lineage recorder's counters."""
    recorder = _recorder()
    with recorder._lock:
        return LineageStats(**vars(recorder.stats))


_QUERY_TYPES = ("CREATE_TABLE_AS_SELECT", "INSERT", "MERGE", "UPDATE", "CREATE_VIEW")


def _parse(job: _Job, settings: DatahubSettings, store: _Store) -> Any:
    """acryl-datahub's SQL lineage for the statement; with schemas DataHub has for its input
    tables, so ``select *`` and unqualified columns resolve too."""
    parser = import_client("datahub.sql_parsing.sqlglot_lineage", SERVICE)
    resolver_mod = import_client("datahub.sql_parsing.schema_resolver", SERVICE)
    m = import_client("datahub.metadata.schema_classes", SERVICE)
    statement = job.statement

    def resolver() -> Any:
        return resolver_mod.SchemaResolver(
            platform="trino", platform_instance=settings.platform_instance, env=settings.env
        )

    args = {"default_db": statement.catalog, "default_schema": statement.schema}
    first = parser.sqlglot_lineage(statement.sql, resolver(), **args)
    known = resolver()  # a new one: a resolver remembers the tables it did not know
    found = 0
    for urn in first.in_tables:
        schema = store.aspect(urn, m.SchemaMetadataClass)
        if schema is not None:
            known.add_schema_metadata(urn, schema)
            found += 1
    return parser.sqlglot_lineage(statement.sql, known, **args) if found else first


def _record(job: _Job) -> str:
    """Parse one statement and emit its lineage; returns the stats counter to bump."""
    settings = DatahubSettings.load()
    if not settings.configured:
        return "skipped"
    mcp_mod = import_client("datahub.emitter.mcp", SERVICE)
    m = import_client("datahub.metadata.schema_classes", SERVICE)
    builder = import_client("datahub.emitter.mce_builder", SERVICE)
    with _store(settings, timeout=settings.lineage_timeout) as store:
        parsed = _parse(job, settings, store)
        kind = str(getattr(parsed.query_type, "name", parsed.query_type))
        if parsed.debug_info.table_error or kind not in _QUERY_TYPES:
            return "skipped"
        if not parsed.in_tables or not parsed.out_tables:
            return "skipped"
        merge = kind != "CREATE_TABLE_AS_SELECT"
        flow = builder.make_data_flow_urn("jupyter", f"{job.user}/{job.notebook}", settings.env)
        mcps = []
        for out in parsed.out_tables:
            columns: dict[str, list[tuple[str, str]]] = {}
            for col in parsed.column_lineage or []:
                if col.downstream.table == out and col.downstream.column and col.upstreams:
                    columns[col.downstream.column] = [(u.table, u.column) for u in col.upstreams]
            existing = store.aspect(out, m.UpstreamLineageClass) if merge else None
            lineage = _lineage_aspect(list(parsed.in_tables), out, columns, existing)
            job_urn = builder.make_data_job_urn_with_flow(flow, _name(out))
            properties = {
                "notebook": job.notebook,
                "hub_user": job.user,
                "statement": kind,
                "trino_query_id": job.statement.query_id or "",
                "sql": job.statement.sql[:4000],
            }
            mcps += [
                mcp_mod.MetadataChangeProposalWrapper(entityUrn=out, aspect=lineage),
                mcp_mod.MetadataChangeProposalWrapper(
                    entityUrn=flow,
                    aspect=m.DataFlowInfoClass(
                        name=Path(job.notebook).name,
                        customProperties={"notebook": job.notebook, "hub_user": job.user},
                    ),
                ),
                mcp_mod.MetadataChangeProposalWrapper(
                    entityUrn=job_urn,
                    aspect=m.DataJobInfoClass(
                        name=f"{Path(job.notebook).name}: {_name(out)}",
                        type="SQL",
                        customProperties=properties,
                    ),
                ),
                mcp_mod.MetadataChangeProposalWrapper(
                    entityUrn=job_urn,
                    aspect=m.DataJobInputOutputClass(
                        inputDatasets=list(parsed.in_tables),
                        outputDatasets=[out],
                        fineGrainedLineages=lineage.fineGrainedLineages,
                    ),
                ),
                mcp_mod.MetadataChangeProposalWrapper(
                    entityUrn=job_urn,
                    aspect=m.OwnershipClass(
                        owners=[
                            m.OwnerClass(
                                owner=builder.make_user_urn(job.user),
                                type=m.OwnershipTypeClass.TECHNICAL_OWNER,
                            )
                        ]
                    ),
                ),
            ]
        store.emit(mcps)
    return "recorded"


# ---- doctor ---------------------------------------------------------------------------------


def check(settings: DatahubSettings) -> str:
    """Doctor. GMS: ``GET /config`` (is it GMS? which version?), then an authenticated GraphQL
    call (who am I?), so a wrong URL or a bad token fails here. Lite: the store opens."""
    if settings.backend == "lite":
        path = settings.lite_file
        store = _lite(settings, read_only=path.exists())
        try:
            count = sum(1 for _ in store.list_ids())
        finally:
            store.close()
        return f"DataHub Lite at {path} ({count} entities)"
    client = _graph(settings)
    try:
        with _errors(settings):
            config = client.get_server_config()
            version = (config.get("versions") or {}).get("acryldata/datahub", {}).get("version")
            me = client.execute_graphql(_WHOAMI, operation_name="carbonWhoAmI")
    finally:
        client.close()
    user = ((me.get("me") or {}).get("corpUser") or {}).get("username") or "?"
    return f"DataHub {version or '?'} as {user} ({'token' if settings.token else 'no token'})"
