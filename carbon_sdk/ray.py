"""Ray: settings, a Ray Client connection that carries the carbon settings to the cluster, the
Jobs API, and the doctor check.

:func:`init` connects to the platform's cluster through Ray Client (``ray://host:10001``), or
starts a new local cluster (on 127.0.0.1) when none is configured. Either way it passes a
``runtime_env`` whose environment variables carry the carbon settings, so tasks on the cluster
can themselves ``from carbon_sdk import trino``: non-secret values as ``CARBON_<SERVICE>__<FIELD>``
variables, secrets by reference only (``CARBON_SECRETS_DIR``: on the platform the workers mount
the same Secret as the notebook). A secret value is never put into a ``runtime_env``, which Ray
shows in its dashboard, job records and logs.

Ray Client needs the same Ray version, and the same Python minor version, on both sides; a
mismatch otherwise surfaces as an opaque error from deep inside the connection (a 2.59 client
against a 2.60 cluster fails with an ``AttributeError`` on ``JobConfig``). :func:`init` reads
the cluster's versions from its dashboard first and raises :class:`VersionMismatch`, naming
both sides and the fix. The Jobs API (:func:`jobs`, :func:`submit`) is plain HTTP and tolerates
version skew.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import math
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TextIO, cast

from pydantic import Field, SecretStr, field_validator

from carbon_sdk._classify import ErrorTable, Rule, fix_for, headline
from carbon_sdk._lazy import import_client
from carbon_sdk._log import client_created, logger
from carbon_sdk._redact import redact, remember
from carbon_sdk.errors import (
    AuthFailed,
    ConfigurationError,
    MissingExtraError,
    NotFound,
    ServiceError,
    TLSError,
    Unreachable,
)
from carbon_sdk.settings import ServiceSettings, env_var, is_secret, secret_file_name
from carbon_sdk.settings.values import http_url

if TYPE_CHECKING:
    import requests
    from ray.job_submission import JobStatus, JobSubmissionClient

SERVICE = "ray"
CLIENT_PORT = 10001
DASHBOARD_PORT = 8265
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
PASSED_THROUGH = ("JUPYTERHUB_USER",)  # not carbon settings, but read by them (identity)
_POLL_SECONDS = 0.5
_log = logger(SERVICE)


class RaySettings(ServiceSettings):
    """Where the platform's Ray cluster is: the head's Ray Client server and dashboard."""

    service: ClassVar[str] = SERVICE
    required: ClassVar[tuple[str, ...]] = ("host",)
    endpoint_fields: ClassVar[tuple[str, ...]] = ("host", "client_port")
    env_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}

    host: str | None = Field(
        None, description="Head node host (KubeRay: the head service, e.g. raycluster-head-svc)."
    )
    client_port: int = Field(
        CLIENT_PORT, gt=0, lt=65536, description="Ray Client server port on the head."
    )
    dashboard_port: int = Field(
        DASHBOARD_PORT, gt=0, lt=65536, description="Dashboard (Jobs API) port on the head."
    )
    dashboard_url: str | None = Field(
        None,
        description="Dashboard base URL when not http://<host>:<dashboard_port> "
        "(e.g. https behind a proxy).",
    )
    token: SecretStr | None = Field(
        None,
        description="Bearer token for a dashboard proxy or Ray token auth; sent to the "
        "dashboard and as Ray Client metadata.",
    )
    namespace: str | None = Field(None, description="Ray namespace for init() (default: Ray's).")

    @field_validator("dashboard_url")
    @classmethod
    def _valid_dashboard_url(cls, url: str | None) -> str | None:
        return http_url(url, credentials=False) if url else url

    @property
    def client_address(self) -> str:
        """``ray://host:port`` of the Ray Client server."""
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"ray://{host}:{self.client_port}"

    @property
    def dashboard(self) -> str:
        """The dashboard's base URL, without a trailing slash and without credentials."""
        if self.dashboard_url:
            return self.dashboard_url.rstrip("/")
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"http://{host}:{self.dashboard_port}"

    @property
    def endpoint(self) -> str:
        """The Ray Client address, ``ray://host:port``."""
        return self.client_address

    def headers(self) -> dict[str, str]:
        """HTTP headers for the dashboard: ``Authorization: Bearer`` when a token is set."""
        token = self.secret("token")
        if not token:
            return {}
        remember(token)
        return {"Authorization": f"Bearer {token}"}


Settings = RaySettings


class VersionMismatch(ConfigurationError):
    """Ray Client cannot work across these Ray or Python versions; the message names both
    sides and the fix.

    Attributes:
        cluster: the cluster's versions.
        local: this environment's versions.
    """

    def __init__(self, message: str, cluster: Versions, local: Versions) -> None:
        self.cluster = cluster
        self.local = local
        super().__init__(message)


@dataclass(frozen=True)
class Versions:
    """The Ray and Python versions of one side of a Ray Client connection."""

    ray: str
    python: str | None

    @property
    def python_minor(self) -> str | None:
        """``3.11`` of ``3.11.7``."""
        return ".".join(self.python.split(".")[:2]) if self.python else None

    def __str__(self) -> str:
        return f"Ray {self.ray} on Python {self.python or '?'}"


@dataclass(frozen=True)
class JobRun:
    """A job submitted with :func:`submit`.

    Attributes:
        submission_id: the job's id (``jobs().get_job_info(id)``, ``stop_job(id)``...).
        status: the last status seen (``SUCCEEDED``, ``FAILED``, ``STOPPED``, or ``PENDING``/
            ``RUNNING`` when not waited for or the wait timed out).
        logs: the job's output so far (driver stdout and stderr).
        message: the job's status message (the reason of a failure).
    """

    submission_id: str
    status: JobStatus | str
    logs: str = ""
    message: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the job succeeded."""
        return str(getattr(self.status, "value", self.status)) == "SUCCEEDED"


# ---- errors ---------------------------------------------------------------------------------

_UNREACHABLE_FIX = (
    "is the head running and reachable? check ray.host, ray.client_port, ray.dashboard_port or "
    "ray.dashboard_url, and ray.connect_timeout (env CARBON_RAY__*)"
)

ERRORS = ErrorTable(
    Rule(
        TLSError,
        "check ray.dashboard_url and ray.ca_bundle",
        types=("requests.exceptions.SSLError",),
        text=("certificate verify failed", "ssl:", "wrong version number"),
    ),
    Rule(
        AuthFailed,
        "check ray.token (env CARBON_RAY__TOKEN)",
        types=("ray.exceptions.AuthenticationError",),
        codes=("401", "403"),
        text=("unauthenticated", "unauthorized", "forbidden", "authentication"),
    ),
    Rule(
        Unreachable,
        _UNREACHABLE_FIX,
        types=(
            "requests.exceptions.ConnectionError",
            "requests.exceptions.Timeout",
            "builtins.ConnectionError",
            "builtins.TimeoutError",
        ),
        codes=("502", "503", "504"),
        text=("timed out", "timeout", "refused", "unavailable", "failed to connect"),
    ),
    Rule(NotFound, "check the submission id", codes=("404",), text=("does not exist",)),
)


def classify(exc: BaseException, settings: RaySettings) -> ServiceError:
    """Turn a requests, Ray Client or Jobs API error into the carbon-sdk error saying what went
    wrong (see :data:`ERRORS`); no credential appears in it."""
    text = redact(str(exc).strip() or type(exc).__name__, settings.secret_values())
    first = headline(text)
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    status = str(code) if code else None
    if status is None and "status code " in first:
        status = first.split("status code ", 1)[1][:3]
    rule = ERRORS.match(exc, status)
    if rule is None:
        return ServiceError(SERVICE, settings.endpoint, f"{type(exc).__name__}: {first}")
    error = cast("type[ServiceError]", rule.error)
    return error(SERVICE, settings.endpoint, f"{first} ({fix_for(rule, settings, text)})")


@contextmanager
def _errors(settings: RaySettings, *extra: type[BaseException]) -> Iterator[None]:
    requests_mod = import_client("requests", SERVICE)
    try:
        yield
    except (requests_mod.RequestException, ConnectionError, TimeoutError, *extra) as exc:
        raise classify(exc, settings) from None


# ---- the dashboard: versions and resources ------------------------------------------------


def _http_session(settings: RaySettings) -> requests.Session:
    """A requests session with the configured TLS verification and token (``trust_env`` off so
    ``REQUESTS_CA_BUNDLE`` cannot replace ``verify``; proxies from the environment still apply)."""
    requests_mod = import_client("requests", SERVICE)
    session: requests.Session = requests_mod.Session()
    session.trust_env = False
    session.verify = settings.tls_verify()
    session.headers.update(settings.headers())
    session.proxies.update(requests_mod.utils.get_environ_proxies(settings.dashboard))
    return session


def _get(settings: RaySettings, path: str, session: requests.Session) -> Any:
    """``GET <dashboard><path>`` as JSON, bounded by the connect and request timeouts."""
    response = session.get(
        f"{settings.dashboard}{path}",
        timeout=(settings.connect_timeout, settings.request_timeout),
    )
    response.raise_for_status()
    try:
        return response.json()
    except ValueError:
        raise ServiceError(
            SERVICE, settings.dashboard, f"{path} did not answer JSON: is this a Ray dashboard?"
        ) from None


def cluster_versions(settings: RaySettings) -> Versions:
    """The cluster's Ray version (``/api/version``) and Python version
    (``/api/v0/cluster_metadata``, absent from old clusters) from its dashboard."""
    settings.require()
    requests_mod = import_client("requests", SERVICE)
    with _errors(settings), _http_session(settings) as session:
        version = _get(settings, "/api/version", session)
        try:
            metadata = _get(settings, "/api/v0/cluster_metadata", session).get("data") or {}
        except requests_mod.HTTPError:
            metadata = {}
    return Versions(str(version.get("ray_version", "?")), metadata.get("pythonVersion"))


def local_versions() -> Versions:
    """This environment's Ray (the imported module's version, else the installed package's)
    and Python versions."""
    module = sys.modules.get("ray")
    version = getattr(module, "__version__", None)
    if version is None:
        try:
            version = importlib.metadata.version("ray")
        except importlib.metadata.PackageNotFoundError:
            raise MissingExtraError("ray", SERVICE) from None
    return Versions(str(version), platform.python_version())


def check_versions(settings: RaySettings, cluster: Versions, local: Versions | None = None) -> None:
    """Raise :class:`VersionMismatch` unless Ray Client can connect ``local`` to ``cluster``:
    the same Ray version and the same Python minor version."""
    local = local or local_versions()
    ray_ok = cluster.ray == local.ray
    python_ok = cluster.python_minor is None or cluster.python_minor == local.python_minor
    if ray_ok and python_ok:
        return
    fixes = []
    if not ray_ok:
        fixes.append(f"pip install 'ray[client,default]=={cluster.ray}' here")
    if not python_ok:
        fixes.append(f"use Python {cluster.python_minor} here (a matching notebook image)")
    raise VersionMismatch(
        f"ray at {settings.client_address}: Ray Client needs the same Ray version and Python "
        f"minor version on both sides; the cluster runs {cluster}, this environment has "
        f"{local}. Fix: {' and '.join(fixes)}, or ask for the notebook image that matches the "
        f"cluster. The Jobs API (carbon_sdk.ray.submit) works across versions.",
        cluster,
        local,
    )


def _alive_nodes(settings: RaySettings, session: requests.Session) -> list[dict[str, Any]]:
    body = _get(settings, "/api/v0/nodes", session)
    nodes = ((body.get("data") or {}).get("result") or {}).get("result") or []
    return [n for n in nodes if n.get("state") == "ALIVE"]


def resources(settings: RaySettings) -> dict[str, float]:
    """The total resources of the cluster's alive nodes (``CPU``, ``GPU``, ``memory``,
    ``object_store_memory``...), from the dashboard's state API."""
    settings.require()
    totals: dict[str, float] = {}
    with _errors(settings), _http_session(settings) as session:
        nodes = _alive_nodes(settings, session)
    for node in nodes:
        for name, amount in (node.get("resources_total") or {}).items():
            if not name.startswith("node:"):
                totals[name] = totals.get(name, 0.0) + float(amount)
    totals["nodes"] = float(len(nodes))
    return totals


# ---- runtime_env: the carbon settings on the cluster ----------------------------------------


def _as_env(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def settings_env() -> dict[str, str]:
    """The environment variables that give a process on the cluster this process's carbon
    settings: every non-secret value that is not a default, as ``CARBON_<SERVICE>__<FIELD>``,
    and ``CARBON_SECRETS_DIR`` (secrets by reference: the workers mount the same Secret).

    Secret values are never included. A secret that does not come from a secret file here (an
    env var, ``configure()``) does not reach the cluster; that is logged at DEBUG with where the
    workers should find it.
    """
    from carbon_sdk._registry import CONNECTORS
    from carbon_sdk.settings.carbon import get_settings

    env: dict[str, str] = {}
    loaded = get_settings()
    secrets_dir = loaded.locations.secrets_dir
    for name, entry in CONNECTORS.items():
        if name == SERVICE:  # tasks do not connect to their own cluster
            continue
        try:
            settings = loaded.service(entry.settings_class())
        except (ConfigurationError, MissingExtraError) as exc:
            _log.debug("runtime_env: %s settings left out: %s", name, exc)
            continue
        for field, info in type(settings).model_fields.items():
            origin = settings.origin(field)
            if origin.kind == "default":
                continue
            if is_secret(info):
                if origin.kind != "secret":
                    _log.debug(
                        "runtime_env: %s.%s (%s) is a secret and is not sent; tasks read it "
                        "from %s on the workers",
                        name,
                        field,
                        origin,
                        secrets_dir / secret_file_name(name, field),
                    )
                continue
            value = getattr(settings, field)
            if value is not None:
                env[env_var(name, field)] = _as_env(value)
    env["CARBON_SECRETS_DIR"] = str(secrets_dir)
    for var in PASSED_THROUGH:
        if value := os.environ.get(var):
            env[var] = value
    return env


def runtime_env(base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``base`` (a Ray ``runtime_env``) with :func:`settings_env` added to its ``env_vars``;
    variables already in ``base`` win."""
    return _with_settings(base)


def _with_settings(base: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = dict(base or {})
    merged["env_vars"] = {**settings_env(), **dict(merged.get("env_vars") or {})}
    return merged


# ---- Ray Client ---------------------------------------------------------------------------


def _reachable(settings: RaySettings) -> None:
    """Raise Unreachable unless the Ray Client port accepts a TCP connection within
    ``connect_timeout`` (Ray Client itself retries for about 30 s before giving up)."""
    try:
        with socket.create_connection(
            (str(settings.host), settings.client_port), timeout=settings.connect_timeout
        ):
            return
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise Unreachable(
            SERVICE,
            settings.client_address,
            f"Ray Client port: {reason} after at most {settings.connect_timeout:g} s "
            f"({_UNREACHABLE_FIX})",
        ) from None


def init(
    *,
    settings: Mapping[str, Any] | None = None,
    check_version: bool = True,
    send_settings: bool = True,
    **kw: Any,
) -> Any:
    """Connect this process to the platform's Ray cluster, or start a local one.

    Configured (``ray.host``): first the cluster's versions are read from its dashboard and
    compared with this environment's (:class:`VersionMismatch` otherwise; ``check_version=False``
    skips that), the Ray Client port is tried within ``ray.connect_timeout``, then
    ``ray.init("ray://host:port", ...)``, once more if the head's server process for the
    session died while starting (nothing was created then). Not configured:
    ``ray.init(address="local")``, a new cluster on 127.0.0.1 (never one found on the machine),
    usage stats off.

    ``kw`` goes to ``ray.init`` (``num_cpus``, ``ignore_reinit_error``, ``address``...); a
    ``runtime_env`` is extended by :func:`runtime_env` unless ``send_settings=False`` (tasks
    then see only what the cluster's own environment gives them; a job with a ``runtime_env``
    costs the cluster dedicated worker processes). ``settings`` are Ray settings on top of the
    configured ones. Returns what ``ray.init`` returns.
    """
    config = RaySettings.load(**dict(settings or {}))
    ray_mod = import_client("ray", SERVICE)
    if send_settings:
        kw["runtime_env"] = runtime_env(kw.get("runtime_env"))
    if not config.configured or "address" in kw:
        return _init_local(config, ray_mod, kw)
    if check_version:
        check_versions(config, cluster_versions(config))
    _reachable(config)
    if config.namespace and "namespace" not in kw:
        kw["namespace"] = config.namespace
    if config.token:
        kw.setdefault("_metadata", [("authorization", config.headers()["Authorization"])])
    _bound_reconnect(config)
    client_created(config, "Ray Client connection")
    with _errors(config, RuntimeError):
        try:
            return ray_mod.init(config.client_address, **kw)
        except ConnectionAbortedError as exc:
            if SESSION_SERVER_FAILED not in str(exc):
                raise
            # The head's server process for this session died while starting (seen: a crash
            # inside grpcio on a loaded head); nothing was created, so connecting again is safe.
            _log.warning("ray: the head's session server failed to start; connecting again")
            ray_mod.shutdown()
            return ray_mod.init(config.client_address, **kw)


SESSION_SERVER_FAILED = "Starting Ray client server failed"
RECONNECT_ENV = "RAY_CLIENT_RECONNECT_GRACE_PERIOD"
_reconnect_set: set[str] = set()  # the values init() put into RECONNECT_ENV


def _bound_reconnect(settings: RaySettings) -> None:
    """Bound how long Ray Client reconnects to a head it lost before a call (``ray.get``)
    fails: ``connect_timeout`` in whole seconds instead of Ray's 30 s (read by each
    ``ray.init``). A value the environment gave (not one set here) is kept."""
    current = os.environ.get(RECONNECT_ENV)
    if current is not None and current not in _reconnect_set:
        return
    value = str(max(1, math.ceil(settings.connect_timeout)))
    os.environ[RECONNECT_ENV] = value
    _reconnect_set.add(value)


def _init_local(config: RaySettings, ray_mod: Any, kw: dict[str, Any]) -> Any:
    kw.setdefault("address", "local")
    if kw["address"] == "local":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kw.setdefault("_node_ip_address", "127.0.0.1")
        kw.setdefault("dashboard_host", "127.0.0.1")
    _log.debug("ray: ray.init(address=%r) (ray.host not set)", kw["address"])
    return ray_mod.init(**kw)


# ---- Jobs API -----------------------------------------------------------------------------


@functools.cache
def _job_client_class() -> type[JobSubmissionClient]:
    """``JobSubmissionClient`` whose every request is bounded like any first contact, then like
    any later wait (:func:`~carbon_sdk._timeouts.first_wait`).

    Ray sends its requests with ``requests.request`` and no timeout, and has no option for one
    (no ``timeout`` argument, no session or adapter to configure), so the one method every
    request goes through passes the timeout. It sends each request once: Ray retries nothing.
    """
    base = import_client("ray.job_submission", SERVICE).JobSubmissionClient
    from carbon_sdk._timeouts import first_wait

    class TimedJobSubmissionClient(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, carbon_settings: RaySettings, **kwargs: Any) -> None:
            self.carbon_settings = carbon_settings
            self.carbon_answered = False  # the constructor's version request comes first
            super().__init__(*args, **kwargs)

        def _do_request(self, method: str, endpoint: str, **kwargs: Any) -> Any:
            settings = self.carbon_settings
            wait = first_wait(settings, answered=self.carbon_answered)
            kwargs.setdefault("timeout", (settings.connect_timeout, wait))
            response = super()._do_request(method, endpoint, **kwargs)
            self.carbon_answered = True
            return response

    return cast("type[JobSubmissionClient]", TimedJobSubmissionClient)


def _jobs(settings: RaySettings) -> JobSubmissionClient:
    settings.require()
    cls = _job_client_class()
    client_created(settings, f"JobSubmissionClient for {settings.dashboard}")
    with _errors(settings, RuntimeError):
        return cls(
            settings.dashboard,
            headers=settings.headers(),
            verify=settings.tls_verify(),
            carbon_settings=settings,
        )


def jobs(**overrides: Any) -> JobSubmissionClient:
    """A ``ray.job_submission.JobSubmissionClient`` for the cluster's dashboard, with the
    configured token, TLS verification and a timeout on every request.

    ``overrides`` are settings on top of the configured ones. The Jobs API tolerates a Ray
    version different from the cluster's."""
    return _jobs(RaySettings.load(**overrides))


def submit(
    entrypoint: str,
    *,
    working_dir: str | os.PathLike[str] | None = None,
    runtime_env: Mapping[str, Any] | None = None,
    wait: bool = True,
    timeout: float | None = None,
    submission_id: str | None = None,
    output: TextIO | Callable[[str], object] | None = None,
    **overrides: Any,
) -> JobRun:
    """Submit ``entrypoint`` (a shell command run on the head, e.g. ``python job.py``) as a Ray
    job, stream its logs to ``output`` (default: stdout) and return its :class:`JobRun`.

    ``working_dir`` is uploaded and becomes the job's working directory; the job's
    ``runtime_env`` carries the carbon settings like :func:`init`'s. With ``wait=False`` it
    returns right after submission; with ``timeout`` (seconds) it stops waiting, not the job,
    and returns the status at that moment. ``overrides`` are Ray settings.
    """
    settings = RaySettings.load(**overrides)
    client = _jobs(settings)
    env = _with_settings(runtime_env)
    if working_dir is not None:
        env["working_dir"] = os.fspath(working_dir)
    with _errors(settings, RuntimeError):
        job_id: str = client.submit_job(
            entrypoint=entrypoint, runtime_env=env, submission_id=submission_id
        )
        if not wait:
            return JobRun(job_id, client.get_job_status(job_id))
    write = _writer(output)
    streamed: list[str] = []
    tail = threading.Thread(
        target=_tail_logs, args=(client, job_id, streamed, write), daemon=True, name="ray-logs"
    )
    tail.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    with _errors(settings, RuntimeError):
        status = client.get_job_status(job_id)
        while str(status.value) not in TERMINAL:
            if deadline is not None and time.monotonic() >= deadline:
                return JobRun(job_id, status, "".join(streamed))
            time.sleep(_POLL_SECONDS)
            status = client.get_job_status(job_id)
        tail.join(timeout=settings.request_timeout)
        info = client.get_job_info(job_id)
        logs = client.get_job_logs(job_id)
    shown = "".join(streamed)
    if logs.startswith(shown) and len(logs) > len(shown):
        write(logs[len(shown) :])  # what the stream missed (it ended early or never started)
    return JobRun(job_id, status, logs, info.message)


def _writer(output: TextIO | Callable[[str], object] | None) -> Callable[[str], object]:
    if output is None:
        return lambda text: (sys.stdout.write(text), sys.stdout.flush())
    if callable(output):
        return output
    stream = output
    return lambda text: (stream.write(text), stream.flush())


def _tail_logs(
    client: JobSubmissionClient, job_id: str, streamed: list[str], write: Callable[[str], object]
) -> None:
    """Follow the job's log over the dashboard's websocket, in a thread with its own event
    loop (so it works inside Jupyter's); the caller fetches whatever this misses."""

    async def follow() -> None:
        async for chunk in client.tail_job_logs(job_id):
            streamed.append(chunk)
            write(chunk)

    try:
        asyncio.run(follow())
    except Exception as exc:  # the final get_job_logs covers a broken stream
        _log.debug("ray: log stream of %s ended: %s", job_id, type(exc).__name__)


# ---- doctor ---------------------------------------------------------------------------------


def check(settings: RaySettings) -> str:
    """Doctor: the dashboard's ``/api/version`` and cluster metadata, whether Ray Client can
    connect from this environment, and the alive nodes' resources."""
    cluster = cluster_versions(settings)
    check_versions(settings, cluster)
    totals = resources(settings)
    nodes = int(totals.pop("nodes", 0))
    if not nodes:
        raise Unreachable(SERVICE, settings.endpoint, f"{cluster}, but no node is alive yet")
    gib = 1024**3
    return (
        f"{cluster}, Ray Client compatible; {nodes} node{'s' if nodes != 1 else ''}: "
        f"{totals.get('CPU', 0):g} CPU, {totals.get('GPU', 0):g} GPU, "
        f"{totals.get('memory', 0) / gib:.1f} GiB memory, "
        f"{totals.get('object_store_memory', 0) / gib:.1f} GiB object store"
    )
