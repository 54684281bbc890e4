"""Health checks behind `carbon-sdk doctor`: connector checks, run concurrently and bounded.

Knows no service by name: the connectors come from :mod:`carbon_sdk._registry`, each with a
``check(settings) -> str`` that returns a detail line or raises a carbon-sdk error, which is
mapped to a status here, once for all connectors.
"""

from __future__ import annotations

import functools
import inspect
import json
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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


def run_check(entry: Connector, timeout: float, deep: bool = False) -> CheckResult:
    """Load ``entry``'s settings and run its check (unbounded; :func:`run` bounds it);
    ``deep`` is passed to checks that take it (e.g. MLflow's artifact store write)."""
    settings: ServiceSettings | None = None
    started = time.perf_counter()
    try:
        settings = entry.settings_class().load()
        if not settings.configured:
            missing = [n for n in settings.required if getattr(settings, n) is None]
            vars_ = ", ".join(env_var(entry.name, n) for n in missing)
            return CheckResult(entry.name, Status.NOT_CONFIGURED, hint=f"set {vars_}")
        bounded = settings.model_copy(
            update={
                "connect_timeout": min(settings.connect_timeout, timeout),
                "request_timeout": min(settings.request_timeout, timeout),
                "max_attempts": 1,
            }
        )
        check = entry.load().check
        deep_ok = deep and "deep" in inspect.signature(check).parameters
        detail = check(bounded, deep=True) if deep_ok else check(bounded)  # type: ignore[call-arg]
        status, hint = Status.OK, None
    except (ServiceError, ConfigurationError, MissingExtraError) as exc:
        status = _status(exc)
        detail, hint = str(exc), _hint(exc, status, entry.name, settings)
    except Exception as exc:
        status, detail, hint = Status.ERROR, f"{type(exc).__name__}: {exc}", None
    latency = (time.perf_counter() - started) * 1000
    secrets = settings.secret_values() if settings is not None else []
    endpoint = settings.endpoint if settings is not None else None
    return CheckResult(
        entry.name,
        status,
        round(latency, 1),
        redact(detail, secrets),
        redact(hint, secrets) if hint else None,
        endpoint,
    )


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

    Each check runs in a process of its own: importing the client libraries, most of a
    check's time, then runs on every core instead of one after another under the GIL, and a
    check still running at the deadline is killed. A single-threaded caller (the CLI) forks;
    a multi-threaded one (a notebook kernel, where forking is unsafe) starts the checks from
    multiprocessing's fork server, handing them its environment and ``configure()`` values.
    ``isolation="thread"`` runs checks in daemon threads instead (one that hangs is abandoned).
    Either way the call returns within ``timeout`` plus a small margin.
    """
    entries = [connector(name) for name in services] or list(CONNECTORS.values())
    for name in require:
        connector(name)
    if isolation == "auto":
        isolation = "fork" if threading.active_count() == 1 else "forkserver"
    check = functools.partial(run_check, timeout=timeout, deep=deep)
    if isolation == "thread":
        results = _in_threads(entries, check, timeout)
    else:
        results = _in_processes(entries, check, timeout, isolation)
    ordered = [results.get(e.name) or _no_answer(e, timeout) for e in entries]
    return DoctorReport(ordered, frozenset(require), timeout)


def _no_answer(entry: Connector, timeout: float) -> CheckResult:
    return CheckResult(
        entry.name,
        Status.UNREACHABLE,
        timeout * 1000,
        f"no answer within {timeout:g} s",
        "is the service running and reachable? raise --timeout if it is slow: "
        f"carbon-sdk config show {entry.name}",
    )


CheckOne = Callable[[Connector], CheckResult]


def _in_threads(
    entries: list[Connector], check: CheckOne, timeout: float
) -> dict[str, CheckResult]:
    results: dict[str, CheckResult] = {}

    def work(entry: Connector) -> None:
        results[entry.name] = check(entry)

    threads = [threading.Thread(target=work, args=(e,), daemon=True) for e in entries]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return results


@dataclass(frozen=True)
class _CallerState:
    """What a check process started by the fork server needs from the caller: its
    environment and its ``configure()`` values (a forked one has them already)."""

    environ: dict[str, str]
    overrides: dict[str, dict[str, Any]]

    def apply(self) -> None:
        from carbon_sdk.settings.carbon import configure

        os.environ.clear()
        os.environ.update(self.environ)
        configure(**self.overrides)


def _in_processes(
    entries: list[Connector], check: CheckOne, timeout: float, method: str
) -> dict[str, CheckResult]:
    from carbon_sdk.settings.carbon import configured_overrides

    context: ForkContext | ForkServerContext = multiprocessing.get_context("fork")
    if method == "forkserver":
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["carbon_sdk.health"])
    state = _CallerState(dict(os.environ), configured_overrides())
    pending: dict[Connection[Any, CheckResult], tuple[Connector, Any]] = {}
    for entry in entries:
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_child, args=(check, entry, writer, state), daemon=True)
        process.start()
        writer.close()
        pending[reader] = (entry, process)
    results: dict[str, CheckResult] = {}
    deadline = time.monotonic() + timeout
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


def _child(check: CheckOne, entry: Connector, writer: Any, state: _CallerState) -> None:
    state.apply()
    writer.send(check(entry))
    writer.close()
