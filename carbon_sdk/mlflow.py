"""MLflow: settings, :func:`setup` for the plain ``mlflow`` API, helpers, and the doctor check.

``setup()`` configures the process the way MLflow reads its configuration, through its standard
environment variables (tracking URI, credentials, TLS, request timeout and retries, and only when
the server does not proxy artifacts, the S3 variables for direct access), so existing code such
as ``mlflow.log_metric(...)`` needs no change. It selects the user's experiment
(``/users/<hub user>/<name>``) and tags every run started with ``mlflow.start_run()`` with the
JupyterHub user and the notebook path (a run context provider, registered through MLflow's
``mlflow.run_context_provider`` entry point and on ``setup()``).

The lighter ``mlflow-skinny`` client suffices (params, metrics, artifacts through the server's
proxy); this module imports it only inside functions. It is ``carbon_sdk.mlflow``: with absolute
imports it never shadows the real ``mlflow`` package.
"""

from __future__ import annotations

import getpass
import math
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator

from carbon_sdk import __version__
from carbon_sdk._auth import basic_header, hub_access_token
from carbon_sdk._classify import ErrorTable, Rule, fix_for, headline
from carbon_sdk._lazy import import_client
from carbon_sdk._log import client_created
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

if TYPE_CHECKING:
    import requests
    from mlflow import MlflowClient

SERVICE = "mlflow"
AuthMode = Literal["auto", "none", "basic", "token", "jupyterhub"]
NOTEBOOK_ENV = "JPY_SESSION_NAME"  # set by jupyter_server in a kernel: the notebook's path
TAG_HUB_USER = "carbon.jupyterhub_user"
TAG_NOTEBOOK = "carbon.notebook"
_AUTH_FIX = (
    "check mlflow.username and mlflow.password (env CARBON_MLFLOW__USERNAME/PASSWORD or "
    "MLFLOW_TRACKING_USERNAME/PASSWORD) or mlflow.token (MLFLOW_TRACKING_TOKEN)"
)
_URI_FIX = "check mlflow.tracking_uri (env CARBON_MLFLOW__TRACKING_URI or MLFLOW_TRACKING_URI)"


class MlflowSettings(ServiceSettings):
    """Where the platform's MLflow tracking server is, how to log in, and the naming of
    experiments (MLflow's ``MLFLOW_TRACKING_*`` variables work)."""

    service: ClassVar[str] = SERVICE
    required: ClassVar[tuple[str, ...]] = ("tracking_uri",)
    endpoint_fields: ClassVar[tuple[str, ...]] = ("tracking_uri",)
    env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {
        "tracking_uri": ("MLFLOW_TRACKING_URI",),
        "username": ("MLFLOW_TRACKING_USERNAME",),
        "password": ("MLFLOW_TRACKING_PASSWORD",),
        "token": ("MLFLOW_TRACKING_TOKEN",),
        "ca_bundle": ("MLFLOW_TRACKING_SERVER_CERT_PATH",),
    }

    tracking_uri: str | None = Field(
        None, description="URL of the tracking server, e.g. https://mlflow.data.svc:5000."
    )
    auth: AuthMode = Field(
        "auto",
        description="Authentication: auto (token if set, else basic if a password is set, "
        "else none), none, basic, token, or jupyterhub (the hub user's access token).",
    )
    username: str | None = Field(
        None, description="User for auth=basic (default: JUPYTERHUB_USER, else the OS user)."
    )
    password: SecretStr | None = Field(None, description="Password for auth=basic.")
    token: SecretStr | None = Field(None, description="Bearer token for auth=token.")
    artifacts_proxied: bool = Field(
        True,
        description="The server proxies artifacts (mlflow-artifacts:); false: the client "
        "writes to S3 directly with the s3 settings.",
    )
    experiment_prefix: str = Field(
        "/users/{user}",
        description="Prefix of relative experiment names; {user} is the JupyterHub user; / for "
        "none.",
    )
    experiment: str | None = Field(
        None, description="Default experiment name (default: the notebook's name, else default)."
    )

    @field_validator("tracking_uri")
    @classmethod
    def _strip_slash(cls, uri: str | None) -> str | None:
        return uri.rstrip("/") if uri else uri

    @property
    def endpoint(self) -> str:
        """The tracking URI without credentials."""
        return _without_userinfo(str(self.tracking_uri))

    def user(self) -> str:
        """Who runs belong to: ``JUPYTERHUB_USER``, else ``username``, else the OS user."""
        return os.environ.get("JUPYTERHUB_USER") or self.username or getpass.getuser()

    def auth_mode(self) -> AuthMode:
        """The authentication in force (``auto`` resolved)."""
        if self.auth != "auto":
            return self.auth
        if self.token is not None:
            return "token"
        return "basic" if self.password is not None else "none"


Settings = MlflowSettings


def _without_userinfo(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


# ---- errors ---------------------------------------------------------------------------------

ERRORS = ErrorTable(
    Rule(
        TLSError,
        "check mlflow.tracking_uri (http or https) and mlflow.ca_bundle",
        types=("requests.exceptions.SSLError",),
        text=("certificate verify failed", "sslerror", "wrong version number"),
    ),
    Rule(
        Unreachable,
        f"is it running? {_URI_FIX} and mlflow.connect_timeout",
        types=("requests.exceptions.ConnectionError", "requests.exceptions.Timeout"),
        codes=("502", "503", "504", "TEMPORARILY_UNAVAILABLE"),
        text=(
            "no answer within",
            "connection refused",
            "failed to establish",
            "max retries exceeded",
            "timed out",
            "name or service not known",
            "failed to resolve",
            "connection aborted",
            "connection reset",
            "remotedisconnected",
        ),
    ),
    Rule(
        AuthFailed,
        _AUTH_FIX,
        codes=("401", "403", "UNAUTHENTICATED", "PERMISSION_DENIED"),
        text=("not authenticated", "permission denied", "unauthorized"),
    ),
    Rule(
        NotFound,
        "check the experiment, run or model name",
        codes=("404", "RESOURCE_DOES_NOT_EXIST"),
        text=("does not exist",),
    ),
)


def _code(exc: BaseException) -> str | None:
    """MLflow's error code (``UNAUTHENTICATED``...) or the HTTP status of a requests error."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None):
        return str(response.status_code)
    code = getattr(exc, "error_code", None)
    return str(code) if code and code != "INTERNAL_ERROR" else None


def _short(text: str) -> str:
    """The useful part of an MLflow/urllib3 message: the reason, or the status and the body."""
    if caused := re.search(r"\(Caused by \w+\((.*)\)\)", text, re.S):
        text = re.sub(r"^['\"]?[\w.]*HTTP\w*Connection\w*\([^)]*\): ", "", caused.group(1))
        return text.strip("'\" ")
    if status := re.search(r"error code (\d{3}) != 200\. Response body: '?(.*?)'?$", text, re.S):
        body = status.group(2).split(". Please see")[0]
        return f"{status.group(1)} {body}".strip()
    return headline(text)


def classify(exc: BaseException, settings: MlflowSettings) -> CarbonError:
    """Turn an MLflow or requests error into the carbon-sdk error saying what went wrong (by
    type, MLflow error code or HTTP status first, see :data:`ERRORS`); no secret in it."""
    text = redact(str(exc).strip() or type(exc).__name__, settings.secret_values())
    code = _code(exc)
    rule = ERRORS.match(exc, code)
    cause = exc.__cause__ or exc.__context__
    if rule is None and cause is not None:
        rule = ERRORS.match(cause, _code(cause))
    short = _short(text)
    if rule is None:
        where = f"{code}: " if code and not short.startswith(code) else ""
        return ServiceError(SERVICE, settings.endpoint, f"{where}{short}")
    error = cast("type[ServiceError]", rule.error)
    fix = fix_for(rule, settings, text)
    return error(SERVICE, settings.endpoint, f"{short} ({fix})" if fix else short)


@contextmanager
def _errors(settings: MlflowSettings, *, client_errors: bool = True) -> Iterator[None]:
    """MLflow's and requests' errors as carbon-sdk errors (``client_errors=False``: requests'
    only, so the doctor does not import mlflow)."""
    requests_mod = import_client("requests", SERVICE)
    caught: tuple[type[BaseException], ...] = (requests_mod.RequestException,)
    if client_errors:
        caught += (import_client("mlflow.exceptions", SERVICE).MlflowException,)
    try:
        yield
    except caught as exc:
        raise classify(exc, settings) from None


# ---- configuration: what setup() applies ----------------------------------------------------


def tracking_uri(settings: MlflowSettings) -> str:
    """The validated ``http(s)://`` tracking URI (credentials belong in the auth settings)."""
    settings.require()
    uri = str(settings.tracking_uri)
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"mlflow.tracking_uri={settings.endpoint!r} ({settings.origin('tracking_uri')}) is "
            "not an http:// or https:// URL of a tracking server; set CARBON_MLFLOW__TRACKING_URI"
        )
    if parts.username or parts.password:
        raise ConfigurationError(
            f"mlflow.tracking_uri ({settings.origin('tracking_uri')}) contains credentials: "
            "move them to mlflow.username and mlflow.password (CARBON_MLFLOW__USERNAME/PASSWORD)"
        )
    return uri


def _credentials(settings: MlflowSettings) -> dict[str, str]:
    """The ``MLFLOW_TRACKING_*`` credential variables for the auth mode (remembered for
    redaction); empty without auth."""
    mode = settings.auth_mode()
    if mode == "basic":
        settings.require("password")
        user, password = settings.username or settings.user(), str(settings.secret("password"))
        basic_header(user, password)  # remembers both forms for redaction
        return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}
    if mode == "token":
        settings.require("token")
        token = str(settings.secret("token"))
    elif mode == "jupyterhub":
        token = hub_access_token(
            connect_timeout=settings.connect_timeout, request_timeout=settings.request_timeout
        )
    else:
        return {}
    remember(token)
    return {"MLFLOW_TRACKING_TOKEN": token}


def _s3_environment() -> dict[str, str | None]:
    """MLflow's S3 variables from the ``s3`` settings, for direct artifact access."""
    from carbon_sdk.s3 import S3Settings

    s3 = S3Settings.load()
    s3.require()
    return {
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": s3.secret("secret_access_key"),
        "AWS_DEFAULT_REGION": s3.region,
        "MLFLOW_S3_IGNORE_TLS": None if s3.verify else "true",
        "AWS_CA_BUNDLE": str(s3.ca_bundle) if s3.ca_bundle and s3.verify else None,
    }


def environment(settings: MlflowSettings) -> dict[str, str | None]:
    """The variables :func:`setup` sets (None: removes), e.g. ``MLFLOW_TRACKING_URI``.

    Credentials of modes not in force are removed, so a stale ``MLFLOW_TRACKING_TOKEN`` cannot
    override the configured password. The values include secrets: never show them.
    """
    env: dict[str, str | None] = {
        "MLFLOW_TRACKING_URI": tracking_uri(settings),
        "MLFLOW_TRACKING_USERNAME": None,
        "MLFLOW_TRACKING_PASSWORD": None,
        "MLFLOW_TRACKING_TOKEN": None,
        "MLFLOW_TRACKING_INSECURE_TLS": None if settings.verify else "true",
        "MLFLOW_TRACKING_SERVER_CERT_PATH": (
            str(settings.ca_bundle) if settings.ca_bundle and settings.verify else None
        ),
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(math.ceil(settings.request_timeout)),
        # MLflow's retry (urllib3, allowed_methods=None) sends POSTs again too, log_batch and
        # create_run included, and its attempts share no deadline: writes are never retried
        # blindly, so MLflow sends each request once (docs/mlflow.md, "Timeouts and retries")
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    env.update(_credentials(settings))
    if not settings.artifacts_proxied:
        env.update(_s3_environment())
    return env


class _State:
    """What the last :func:`client`/:func:`setup` applied (so repeating it is cheap)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple[Any, ...] | None = None
        self.client: MlflowClient | None = None
        self.configured = False


_STATE = _State()


def _configure(settings: MlflowSettings) -> MlflowClient:
    """Apply ``settings`` to the process (environment, tracking URI, run tags); with settings
    not applied before, check that the server answers (:func:`_first_contact`) before making
    the client (the environment stays applied for the plain API if it does not)."""
    env = environment(settings)
    key = tuple(sorted((k, v or "") for k, v in env.items()))
    mlflow_mod = import_client("mlflow", SERVICE)
    with _STATE.lock:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _disable_telemetry()
        mlflow_mod.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        _register_run_context()
        _STATE.configured = True
        if _STATE.client is not None and _STATE.key == key:
            return _STATE.client
    _first_contact(settings)  # not under the lock: it may wait connect_timeout
    with _STATE.lock:
        client_created(
            settings,
            f"MlflowClient (auth={settings.auth_mode()}, artifacts "
            f"{'proxied by the server' if settings.artifacts_proxied else 'direct to S3'})",
        )
        _STATE.client = mlflow_mod.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
        _STATE.key = key
        return _STATE.client


def _disable_telemetry() -> None:
    """MLflow's client telemetry (to mlflow.org) stays off unless the user set
    ``MLFLOW_DISABLE_TELEMETRY`` themselves; re-evaluated if mlflow was imported already."""
    if "MLFLOW_DISABLE_TELEMETRY" in os.environ:
        return
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    if "mlflow.telemetry.client" in sys.modules:
        with suppress(Exception):
            sys.modules["mlflow.telemetry.client"].set_telemetry_client()


def _first_contact(settings: MlflowSettings) -> None:
    """``GET /health`` through the SDK's own session, its first answer due within
    ``connect_timeout`` (:class:`carbon_sdk._http.DeadlineAdapter`; a refused or broken
    connection tried again within that time).

    MLflow has one timeout, ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (whole seconds, from
    ``request_timeout``), for every wait, the first byte included, and no way to give it a
    session: a server that accepts and never answers would hold a call for ``request_timeout``.
    Any answer will do; MLflow's own request reports what a server that answers says."""
    from carbon_sdk._http import bounded, safe_method

    with _errors(settings, client_errors=False), _http_session(settings) as session:
        bounded(session, settings, idempotent=safe_method)
        session.get(f"{tracking_uri(settings)}/health").close()


def client(**overrides: Any) -> MlflowClient:
    """An ``MlflowClient`` for the platform's server; configures the process like
    :func:`setup` (tracking URI, auth, TLS, timeouts) without selecting an experiment. With
    settings not applied before in this process, it checks that the server answers
    (``/health`` within ``connect_timeout``; :class:`~carbon_sdk.errors.Unreachable`
    otherwise)."""
    return _configure(MlflowSettings.load(**overrides))


def setup(experiment: str | None = None, **overrides: Any) -> MlflowClient:
    """Point the plain ``mlflow`` API at the platform's server and select the experiment.

    Sets the tracking URI, credentials (token or basic), TLS, timeouts and retries, and, only
    when the server does not proxy artifacts, the S3 variables; creates the experiment if
    needed and makes it active. A relative ``experiment`` (default: ``mlflow.experiment``, else
    the notebook's name, else ``default``) becomes ``/users/<hub user>/<experiment>``; a name
    starting with ``/`` is used as is. Runs started with ``mlflow.start_run()`` are tagged with
    the JupyterHub user and the notebook path. Idempotent; returns the ``MlflowClient``.
    """
    settings = MlflowSettings.load(**overrides)
    mlflow_client = _configure(settings)
    name = experiment_name(experiment, **overrides)
    mlflow_mod = import_client("mlflow", SERVICE)
    exceptions = import_client("mlflow.exceptions", SERVICE)
    with _errors(settings):
        try:
            mlflow_mod.set_experiment(name)
        except exceptions.MlflowException as exc:
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
            mlflow_mod.set_experiment(name)  # created concurrently by another process
    return mlflow_client


def experiment_name(experiment: str | None = None, **overrides: Any) -> str:
    """The full name of ``experiment`` after the naming convention (see :func:`setup`)."""
    settings = MlflowSettings.load(**overrides)
    name = experiment or settings.experiment or _notebook_stem() or "default"
    if name.startswith("/"):
        return name
    try:
        prefix = settings.experiment_prefix.format(user=settings.user())
    except (KeyError, IndexError, ValueError):
        raise ConfigurationError(
            f"mlflow.experiment_prefix ({settings.origin('experiment_prefix')}) may only use "
            "the placeholder {user}; set CARBON_MLFLOW__EXPERIMENT_PREFIX"
        ) from None
    prefix = prefix.rstrip("/")
    return f"{prefix}/{name}" if prefix else name


def _notebook_path() -> str | None:
    return os.environ.get(NOTEBOOK_ENV) or None


def _notebook_stem() -> str | None:
    path = _notebook_path()
    if not path:
        return None
    stem = path.rsplit("/", 1)[-1]
    return stem.removesuffix(".ipynb") or None


# ---- run tags -------------------------------------------------------------------------------


class RunContext:
    """MLflow run context provider: tags runs with the JupyterHub user and the notebook path
    once :func:`setup` (or :func:`client`) ran in the process. ``mlflow.user`` becomes the hub
    user (the OS user in a hub's container says nothing)."""

    def in_context(self) -> bool:
        return _STATE.configured

    def tags(self) -> dict[str, str]:
        tags = {"carbon.sdk_version": __version__}
        if hub_user := os.environ.get("JUPYTERHUB_USER"):
            tags[TAG_HUB_USER] = hub_user
            tags["mlflow.user"] = hub_user
        if notebook := _notebook_path():
            tags[TAG_NOTEBOOK] = notebook
            tags["mlflow.source.name"] = notebook
            tags["mlflow.source.type"] = "NOTEBOOK"
        return tags


def _register_run_context() -> None:
    """Make sure :class:`RunContext` is in MLflow's registry (the entry point adds it when
    carbon-sdk is installed; an editable or vendored copy may lack the entry point)."""
    registry = import_client("mlflow.tracking.context.registry", SERVICE)
    providers = getattr(registry, "_run_context_provider_registry", None)
    if providers is None:
        return
    with suppress(Exception):
        if not any(
            type(p).__name__ == "RunContext" and type(p).__module__ == __name__ for p in providers
        ):
            providers.register(RunContext)


# ---- helpers --------------------------------------------------------------------------------


def log_metrics(
    metrics: Mapping[str, float] | Iterable[Any],
    *,
    step: int = 0,
    run_id: str | None = None,
    timestamp: int | None = None,
) -> int:
    """Log many metrics in as few requests as the server allows (batches of 1,000).

    ``metrics``: a mapping ``{key: value}`` or rows ``(key, value[, step[, timestamp_ms]])``
    (or MLflow ``Metric`` objects); ``step`` and ``timestamp`` (ms, default now) fill what a row
    lacks. ``run_id`` defaults to the active run. Returns the number of metrics logged.
    """
    mlflow_client = client()
    mlflow_mod = import_client("mlflow", SERVICE)
    entities = import_client("mlflow.entities", SERVICE)
    settings = MlflowSettings.load()
    if run_id is None:
        active = mlflow_mod.active_run()
        if active is None:
            raise ValueError("no active run: start one with mlflow.start_run() or pass run_id=")
        run_id = active.info.run_id
    now = timestamp if timestamp is not None else int(time.time() * 1000)
    metric = entities.Metric
    rows: Iterable[Any] = metrics.items() if isinstance(metrics, Mapping) else metrics
    batch = [row if isinstance(row, metric) else _metric(metric, row, step, now) for row in rows]
    with _errors(settings):
        mlflow_client.log_batch(run_id, metrics=batch)
    return len(batch)


def _metric(metric: Any, row: tuple[Any, ...], step: int, now: int) -> Any:
    """One ``Metric`` from ``(key, value[, step[, timestamp]])``."""
    return metric(
        row[0],
        float(row[1]),
        row[3] if len(row) > 3 else now,
        row[2] if len(row) > 2 else step,
    )


def runs(
    experiment: str | None = None,
    *,
    filter_string: str = "",
    order_by: list[str] | None = None,
    max_results: int = 1000,
    **overrides: Any,
) -> Any:
    """The runs of ``experiment`` (named as in :func:`setup`; default: the active one) as a
    pandas DataFrame: one row per run, ``params.*``, ``metrics.*`` and ``tags.*`` columns."""
    settings = MlflowSettings.load(**overrides)
    mlflow_client = _configure(settings)
    mlflow_mod = import_client("mlflow", SERVICE)
    with _errors(settings):
        if experiment is None and (active := _active_experiment_id(mlflow_mod)):
            experiment_id = active
        else:
            name = experiment_name(experiment, **overrides)
            found = mlflow_client.get_experiment_by_name(name)
            if found is None:
                raise NotFound(SERVICE, settings.endpoint, f"no experiment named {name!r}")
            experiment_id = found.experiment_id
        return mlflow_mod.search_runs(
            experiment_ids=[experiment_id],
            filter_string=filter_string,
            order_by=order_by,
            max_results=max_results,
            output_format="pandas",
        )


def _active_experiment_id(mlflow_mod: Any) -> str | None:
    fluent = sys.modules.get("mlflow.tracking.fluent")
    active = getattr(fluent, "_active_experiment_id", None) if fluent else None
    return str(active) if active else None


def load_model(uri: str, *, flavor: str = "pyfunc", **overrides: Any) -> Any:
    """Load a model by ``runs:/<run id>/<path>``, ``models:/<name>/<version>`` or
    ``models:/<name>@<alias>`` from the platform's server, as ``mlflow.<flavor>`` loads it
    (default pyfunc; e.g. ``flavor="sklearn"`` for the estimator itself)."""
    if not re.fullmatch(r"[a-z_]+", flavor):
        raise ValueError(f"not an MLflow flavor: {flavor!r}")
    settings = MlflowSettings.load(**overrides)
    _configure(settings)
    module = import_client(f"mlflow.{flavor}", SERVICE)
    with _errors(settings):
        return module.load_model(uri)


# ---- doctor ---------------------------------------------------------------------------------


def _http_session(settings: MlflowSettings) -> requests.Session:
    """A requests session with the configured TLS verification and credentials (``trust_env``
    off so ``REQUESTS_CA_BUNDLE`` cannot replace ``verify``; proxies still resolved)."""
    requests_mod = import_client("requests", SERVICE)
    session: requests.Session = requests_mod.Session()
    session.trust_env = False
    session.verify = settings.tls_verify()
    uri = tracking_uri(settings)
    session.proxies.update(requests_mod.utils.get_environ_proxies(uri))
    credentials = _credentials(settings)
    if "MLFLOW_TRACKING_TOKEN" in credentials:
        session.headers["Authorization"] = f"Bearer {credentials['MLFLOW_TRACKING_TOKEN']}"
    elif credentials:
        session.headers["Authorization"] = basic_header(
            credentials["MLFLOW_TRACKING_USERNAME"], credentials["MLFLOW_TRACKING_PASSWORD"]
        )
    return session


def check(settings: MlflowSettings, *, deep: bool = False) -> str:
    """Doctor: ``/health`` (reachable), ``/version``, an experiment search (the API and the
    credentials); with ``deep``, writes and deletes a small artifact through the server."""
    uri = tracking_uri(settings)
    timeout = (settings.connect_timeout, settings.request_timeout)
    session = _http_session(settings)
    with _errors(settings, client_errors=False), session:
        health = session.get(f"{uri}/health", timeout=timeout)
        if health.status_code != 200:
            raise Unreachable(
                SERVICE, settings.endpoint, f"/health answered {health.status_code} ({_URI_FIX})"
            )
        version = session.get(f"{uri}/version", timeout=timeout)
        shown = version.text.strip() if version.ok and len(version.text) < 40 else "?"
        search = session.post(
            f"{uri}/api/2.0/mlflow/experiments/search", json={"max_results": 1}, timeout=timeout
        )
        search.raise_for_status()
        detail = f"MLflow {shown}, API ok ({settings.auth_mode()} auth)"
        if deep:
            detail += ", " + _check_artifacts(settings, session, uri, timeout)
    return detail


def _check_artifacts(
    settings: MlflowSettings, session: requests.Session, uri: str, timeout: tuple[float, float]
) -> str:
    if not settings.artifacts_proxied:
        return "artifacts go to S3 directly (check them with: carbon-sdk doctor s3)"
    path = f"carbon-sdk-doctor/{uuid.uuid4().hex}.txt"
    url = f"{uri}/api/2.0/mlflow-artifacts/artifacts/{path}"
    written = session.put(url, data=b"carbon-sdk doctor\n", timeout=timeout)
    if not written.ok:
        raise ServiceError(
            SERVICE,
            settings.endpoint,
            f"the artifact store is not writable: PUT {path} answered {written.status_code} "
            f"{_short(redact(written.text, settings.secret_values()))[:200]}",
        )
    session.delete(url, timeout=timeout)
    return "artifact store writable"
