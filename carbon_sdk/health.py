"""Health checks behind `carbon-sdk doctor`: connector checks, run concurrently and bounded.

Knows no service by name: the connectors come from :mod:`carbon_sdk._registry`, each with a
``check(settings) -> str`` that returns a detail line or raises a carbon-sdk error, which is
mapped to a status here, once for all connectors.
"""

from __future__ import annotations

import inspect
import json
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from carbon_sdk._redact import redact

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.context import ForkContext, ForkServerContext

from carbon_sdk._registry import CONNECTORS, Connector, connector
from carbon_sdk.errors import (
    AuthFailed,
    ConfigurationError,
    MissingExtraError,
    NotFound,
    ServiceError,
    TLSError,
    Unreachable,
)
from carbon_sdk.settings import ServiceSettings, env_var

DEFAULT_TIMEOUT = 5.0
JSON_FORMAT_VERSION = 1


class Status(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    NOT_CONFIGURED = "not configured"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth failed"
    MISCONFIGURED = "misconfigured"
    ERROR = "error"


@dataclass(frozen=True)
class CheckResult:
    """One service's row: status, latency, what was found and, on failure, how to fix it."""

    service: str
    status: Status
    latency_ms: float | None = None
    detail: str = ""
    hint: str | None = None
    endpoint: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the service answered as expected."""
        return self.status is Status.OK


@dataclass(frozen=True)
class DoctorReport:
    """Every check's result; ``exit_code`` is 0 when each configured (or required) one is ok."""

    results: list[CheckResult]
    required: frozenset[str] = field(default_factory=frozenset)
    timeout: float = DEFAULT_TIMEOUT

    def failed(self, result: CheckResult) -> bool:
        """Whether ``result`` counts as a failure of the whole report."""
        if result.status is Status.NOT_CONFIGURED:
            return result.service in self.required
        return not result.ok

    @property
    def ok(self) -> bool:
        """Whether no result counts as a failure."""
        return not any(self.failed(r) for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when :attr:`ok`, else 1."""
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON document (see docs/doctor.md)."""
        return {
            "version": JSON_FORMAT_VERSION,
            "ok": self.ok,
            "timeout_s": self.timeout,
            "results": [
                {**asdict(r), "status": r.status.value, "failed": self.failed(r)}
                for r in self.results
            ],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def _repr_html_(self) -> str:
        from carbon_sdk._render import doctor_html

        return doctor_html(self)

    def __rich__(self) -> Any:
        from carbon_sdk._render import doctor_table

        return doctor_table(self)


def _hint(error: Exception, status: Status, service: str, settings: ServiceSettings | None) -> str:
    if isinstance(error, MissingExtraError):
        return error.install_command
    if status is Status.UNREACHABLE and settings is not None:
        return f"is it running and reachable? {settings.describe(*settings.endpoint_fields)}"
    if status is Status.AUTH_FAILED:
        return f"check the credentials: carbon-sdk config show {service}"
    return f"check the settings: carbon-sdk config show {service}"


def _status(error: Exception) -> Status:
    if isinstance(error, Unreachable):
        return Status.UNREACHABLE
    if isinstance(error, AuthFailed):
        return Status.AUTH_FAILED
    if isinstance(error, ConfigurationError | TLSError | NotFound | MissingExtraError):
        return Status.MISCONFIGURED
    return Status.ERROR


def prepare_check(entry: Connector, timeout: float) -> ServiceSettings | CheckResult:
    """``entry``'s settings bounded by ``timeout`` (one attempt), or the final result when there
    is nothing to check: not configured, or settings that do not load."""
    try:
        settings = entry.settings_class().load()
    except ConfigurationError as exc:
        return CheckResult(
            entry.name,
            Status.MISCONFIGURED,
            0.0,
            str(exc),
            _hint(exc, Status.MISCONFIGURED, entry.name, None),
        )
    if not settings.configured:
        missing = [n for n in settings.required if getattr(settings, n) is None]
        vars_ = ", ".join(env_var(entry.name, n) for n in missing)
        return CheckResult(entry.name, Status.NOT_CONFIGURED, hint=f"set {vars_}")
    return settings.model_copy(
        update={
            "connect_timeout": min(settings.connect_timeout, timeout),
            "request_timeout": min(settings.request_timeout, timeout),
            "max_attempts": 1,
        }
    )


def execute_check(entry: Connector, settings: ServiceSettings, deep: bool = False) -> CheckResult:
    """Run ``entry``'s check with ``settings`` (unbounded; :func:`run` bounds it) and turn its
    outcome into a result, redacted once here; ``deep`` is passed to checks that take it."""
    started = time.perf_counter()
    try:
        check = entry.load().check
        deep_ok = deep and "deep" in inspect.signature(check).parameters
        detail = check(settings, deep=True) if deep_ok else check(settings)  # type: ignore[call-arg]
        status, hint = Status.OK, None
    except (ServiceError, ConfigurationError, MissingExtraError) as exc:
        status = _status(exc)
        detail, hint = str(exc), _hint(exc, status, entry.name, settings)
    except Exception as exc:
        status, detail, hint = Status.ERROR, f"{type(exc).__name__}: {exc}", None
    latency = (time.perf_counter() - started) * 1000
    secrets = settings.secret_values()
    return CheckResult(
        entry.name,
        status,
        round(latency, 1),
        redact(detail, secrets),
        redact(hint, secrets) if hint else None,
        settings.endpoint,
    )


def run_check(entry: Connector, timeout: float, deep: bool = False) -> CheckResult:
    """Load ``entry``'s settings and run its check in this thread (unbounded)."""
    prepared = prepare_check(entry, timeout)
    return prepared if isinstance(prepared, CheckResult) else execute_check(entry, prepared, deep)


Isolation = Literal["auto", "fork", "forkserver", "thread"]


def run(
    services: Iterable[str] = (),
    *,
    timeout: float = DEFAULT_TIMEOUT,
    require: Sequence[str] = (),
    isolation: Isolation = "auto",
    deep: bool = False,
) -> DoctorReport:
    """Check ``services`` (default: all) concurrently; each is cut off after ``timeout`` s.
    ``deep``: also the slower, writing checks of connectors that have one.

    Settings are resolved here; each configured service's check then runs in a process of its
    own: importing the client libraries, most of a check's time, then runs on every core
    instead of one after another under the GIL, and a check still running at the deadline is
    killed. A single-threaded caller (the CLI) forks; a multi-threaded one (a notebook kernel,
    where forking is unsafe) starts the checks from multiprocessing's fork server, handing
    them the resolved settings and its environment. ``isolation="thread"`` runs checks in
    daemon threads instead (one that hangs is abandoned). Either way the call returns within
    ``timeout`` of being called plus a small margin: resolving settings and starting the check
    processes (slow on a loaded machine) count against it too.
    """
    deadline = time.monotonic() + timeout
    entries = [connector(name) for name in services] or list(CONNECTORS.values())
    for name in require:
        connector(name)
    if isolation == "auto":
        isolation = "fork" if threading.active_count() == 1 else "forkserver"
    results: dict[str, CheckResult] = {}
    jobs: list[Job] = []
    for entry in entries:
        prepared = prepare_check(entry, timeout)
        if isinstance(prepared, CheckResult):
            results[entry.name] = prepared
        else:
            jobs.append(Job(entry, prepared, deep))
    if isolation == "thread":
        results |= _in_threads(jobs, deadline)
    elif jobs:
        results |= _in_processes(jobs, deadline, isolation)
    ordered = [results.get(e.name) or _no_answer(e, timeout) for e in entries]
    return DoctorReport(ordered, frozenset(require), timeout)


@dataclass(frozen=True)
class Job:
    """One check to run: the connector, its bounded settings, and whether to go deep."""

    entry: Connector
    settings: ServiceSettings
    deep: bool

    def __call__(self) -> CheckResult:
        return execute_check(self.entry, self.settings, self.deep)


def _no_answer(entry: Connector, timeout: float) -> CheckResult:
    return CheckResult(
        entry.name,
        Status.UNREACHABLE,
        timeout * 1000,
        f"no answer within {timeout:g} s",
        "is the service running and reachable? raise --timeout if it is slow: "
        f"carbon-sdk config show {entry.name}",
    )


def _in_threads(jobs: list[Job], deadline: float) -> dict[str, CheckResult]:
    results: dict[str, CheckResult] = {}

    def work(job: Job) -> None:
        results[job.entry.name] = job()

    threads = [threading.Thread(target=work, args=(job,), daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return results


def _in_processes(jobs: list[Job], deadline: float, method: str) -> dict[str, CheckResult]:
    context: ForkContext | ForkServerContext = multiprocessing.get_context("fork")
    if method == "forkserver":
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["carbon_sdk.health"])
    environ = dict(os.environ)
    pending: dict[Connection[Any, CheckResult], tuple[Connector, Any]] = {}
    for job in jobs:
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(job, writer, environ), daemon=True)
        process.start()
        writer.close()
        pending[reader] = (job.entry, process)
    results: dict[str, CheckResult] = {}
    while pending and (left := deadline - time.monotonic()) > 0:
        ready = set(multiprocessing.connection.wait(list(pending), left))
        for reader in [r for r in pending if r in ready]:
            entry, process = pending.pop(reader)
            try:
                results[entry.name] = reader.recv()
            except EOFError:
                results[entry.name] = CheckResult(
                    entry.name, Status.ERROR, detail="the check's process ended without a result"
                )
            process.join()
    for _entry, process in pending.values():  # past the deadline: end them, they are ours
        process.kill()
        process.join()
    return results


def _child(job: Job, writer: Any, environ: dict[str, str]) -> None:
    """A check process: the caller's environment (a fork server's is older), then the check."""
    os.environ.clear()
    os.environ.update(environ)
    writer.send(job())
    writer.close()
