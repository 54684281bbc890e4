"""The supervisor: :class:`Stack` starts, inspects and stops the services of one
``CARBON_DEV_HOME``.

``up`` is not a daemon: it starts each server in its own process group, waits for it to be
ready, records pid, process group and ports in the state directory and returns. Every later
command (``status``, ``down``, another ``up``) works from that record alone, so it finds exactly
the processes ``up`` started, never a process found by name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import string
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Literal, TypeVar

from . import ports, process
from .progress import Progress
from .service import DevStackError, Service, ServiceContext, ServiceStartError
from .state import ServiceRecord, StateDir, default_home, profile_name

_POLL_SECONDS = 0.05
T = TypeVar("T")
R = TypeVar("R")


class State(StrEnum):
    """What ``status`` reports for a service."""

    RUNNING = "running"
    FAILED = "failed"  # recorded as started, but its process is gone
    STOPPED = "stopped"


@dataclass(frozen=True)
class ServiceStatus:
    """One line of ``dev status``."""

    name: str
    state: State
    pid: int | None
    port: int | None
    uptime: float | None
    log_path: Path


@dataclass(frozen=True)
class Started:
    """The outcome of ``up`` for one service."""

    name: str
    already_running: bool
    seconds: float


class Profile(Enum):
    """How a :class:`Stack` names the config profile it keeps."""

    FROM_HOME = "from-home"  # state.profile_name(home): `dev`, or `dev-<dir>-<hash>`


class Stack:
    """The local platform stack rooted at ``home`` (default: :func:`default_home`).

    Args:
        home: the state directory; two stacks with different homes are fully independent.
        services: the services this stack knows, by name (default: the registry).
        profile: the config profile this stack keeps in the user config file for the SDK:
            written by ``up`` with the running services, removed by ``down`` (None: none).
            By default ``dev`` for the standard home, ``dev-<dir>-<hash>`` for another one,
            so two stacks never overwrite each other's profile.
    """

    def __init__(
        self,
        home: Path | None = None,
        *,
        services: Mapping[str, Service] | None = None,
        profile: str | Literal[Profile.FROM_HOME] | None = Profile.FROM_HOME,
    ) -> None:
        if services is None:
            from .registry import SERVICES

            services = SERVICES
        self.home = home or default_home()
        self.services = dict(services)
        self.profile = profile_name(self.home) if profile is Profile.FROM_HOME else profile
        self._state = StateDir(self.home)

    def ca_pem(self) -> Path:
        """The certificate of the stack's CA (what clients trust; its TLS services make it)."""
        from .tls import CA

        return CA.of_stack(self._state.shared_dir).cert_pem

    # -- up -------------------------------------------------------------------------------

    def up(self, names: Sequence[str] = (), progress: Progress | None = None) -> list[Started]:
        """Start ``names`` (default: every service with ``default`` set) and their dependencies;
        idempotent.

        Services already running are left alone and reported as such; a service whose process
        died is restarted. Independent services start in parallel. Raises
        :class:`ServiceStartError` (with the log tail) if a service does not become ready.
        """
        progress = progress or Progress()
        wanted = list(names) or [n for n, s in self.services.items() if s.default]
        levels = dependency_levels({n: s.depends_on for n, s in self.services.items()}, wanted)
        results: list[Started] = []
        with self._state.locked():
            try:
                promised: set[int] = set()
                for level in levels:
                    to_start: list[tuple[Service, ServiceContext]] = []
                    for name in level:
                        record = self._state.load(name)
                        handle = record.handle if record else None
                        if record and handle and process.is_alive(handle):
                            progress.already_running(name, handle.pid)
                            promised.update(record.ports.values())
                            results.append(Started(name, already_running=True, seconds=0.0))
                            continue
                        if handle:  # crashed: clear leftovers of its process group first
                            process.stop(handle, signal_of(record), timeout_of(record))
                        service = self.services[name]
                        to_start.append((service, self._context(service, promised, progress)))
                    results.extend(_in_parallel(lambda job: self._start(*job), to_start))
            finally:
                self._sync_profile()
        return results

    def _context(self, service: Service, promised: set[int], progress: Progress) -> ServiceContext:
        record = self._state.load(service.name) or ServiceRecord(service.name)
        for key in service.secrets:
            record.secrets.setdefault(key, _generate_secret())
        allocated = ports.allocate(
            service.ports, offset=service.port_offset, preferred=record.ports, exclude=promised
        )
        home = self._state.service_home(service.name)
        home.mkdir(parents=True, exist_ok=True)
        log = self._state.log_path(service.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        if log.exists():
            log.replace(log.with_name(log.name + ".1"))
        dependencies = {}
        for name in service.depends_on:  # started in an earlier level, so recorded by now
            dependency = self._state.load(name)
            if dependency and dependency.settings:
                dependencies[name] = dependency.settings
        return ServiceContext(
            name=service.name,
            home=home,
            log_path=log,
            ports=allocated,
            secrets=record.secrets,
            shared_dir=self._state.shared_dir,
            paths=record.paths,
            progress=progress,
            dependencies=dependencies,
        )

    def _start(self, service: Service, ctx: ServiceContext) -> Started:
        ctx.progress.starting(service.name)
        began = time.monotonic()
        record = ServiceRecord(
            name=service.name,
            depends_on=list(service.depends_on),
            ports=ctx.ports,
            main_port=service.main_port,
            secrets=ctx.secrets,
            paths=ctx.paths,
            stop_signal=int(service.stop_signal),
            stop_timeout=service.stop_timeout,
        )
        self._state.save(record)  # secrets and paths survive a failing prepare
        handle = None
        try:
            service.prepare(ctx)
            env = {**os.environ, **service.env(ctx)}
            try:
                handle = process.spawn(
                    service.command(ctx),
                    log_path=ctx.log_path,
                    env=env,
                    cwd=service.workdir(ctx),
                    user=service.user(ctx),
                )
            except OSError as exc:
                raise ServiceStartError(
                    service.name, f"could not run: {exc}", ctx.log_path
                ) from exc
            record.attach(handle)
            self._state.save(record)
            self._wait_ready(service, ctx, handle)
            service.after_start(ctx)
            record.settings = service.settings(ctx)
        except Exception as exc:
            ctx.progress.failed(service.name, str(exc))
            if handle:
                process.stop(handle, service.stop_signal, service.stop_timeout)
            record.detach()
            raise
        finally:
            self._state.save(record)
        seconds = time.monotonic() - began
        ctx.progress.ready(service.name, seconds)
        return Started(service.name, already_running=False, seconds=seconds)

    @staticmethod
    def _wait_ready(service: Service, ctx: ServiceContext, handle: process.ProcessHandle) -> None:
        deadline = time.monotonic() + service.ready_timeout
        while True:
            if not process.is_alive(handle):
                code = process.exit_code(handle)
                how = f" with code {code}" if code is not None else ""
                raise ServiceStartError(
                    service.name, f"the server exited{how} before it was ready", ctx.log_path
                )
            if service.probe(ctx):
                return
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    service.name,
                    f"not ready after {service.ready_timeout:g} s (readiness probe kept failing)",
                    ctx.log_path,
                )
            time.sleep(_POLL_SECONDS)

    def _sync_profile(self) -> None:
        """Make the profile hold exactly the running services; without any, remove it (a
        profile pointing at stopped servers would fail later with "connection refused")."""
        if not self.profile:
            return
        from carbon_sdk._registry import CONNECTORS
        from carbon_sdk.settings import remove_profile, write_profile

        # only connectors' sections: a test-only server (trino_secure, mlflow_auth) is no section
        connectors = {k: v for k, v in self.settings().items() if k in CONNECTORS}
        if connectors:
            write_profile(self.profile, connectors)
        else:
            remove_profile(self.profile)

    # -- down -----------------------------------------------------------------------------

    def down(self, *, purge: bool = False, progress: Progress | None = None) -> list[str]:
        """Stop every recorded service, dependents first; idempotent. Returns the names stopped.

        ``purge`` also deletes data, logs and state (the next ``up`` starts from scratch).
        """
        progress = progress or Progress()
        stopped: list[str] = []
        with self._state.locked():
            records = {r.name: r for r in self._state.records()}
            deps = {n: tuple(r.depends_on) for n, r in records.items()}
            for level in reversed(dependency_levels(deps, list(records), strict=False)):
                level_records = [records[n] for n in level]
                outcomes = _in_parallel(lambda r: self._stop(r, progress), level_records)
                stopped.extend(name for name in outcomes if name)
            self._sync_profile()
            if purge:
                for record in records.values():
                    for path in record.paths.values():
                        shutil.rmtree(path, ignore_errors=True)
                state = self._state
                homes = [state.service_home(name) for name in records]
                for directory in (*homes, state.state_dir, state.logs_dir, state.shared_dir):
                    shutil.rmtree(directory, ignore_errors=True)
        return stopped

    def _stop(self, record: ServiceRecord, progress: Progress) -> str | None:
        handle = record.handle
        if handle is None:
            return None
        ran = bool(process.group_members(handle))
        process.stop(handle, signal_of(record), timeout_of(record))
        record.detach()
        self._state.save(record)
        if ran:
            progress.stopped(record.name)
        return record.name if ran else None

    # -- inspection -----------------------------------------------------------------------

    def status(self) -> list[ServiceStatus]:
        """The state of every service this home has a record of."""
        order = {name: i for i, name in enumerate(self.services)}
        records = sorted(
            self._state.records(), key=lambda r: (order.get(r.name, len(order)), r.name)
        )
        return [self._status(r) for r in records]

    def _status(self, record: ServiceRecord) -> ServiceStatus:
        handle = record.handle
        log = self._state.log_path(record.name)
        port = record.ports.get(record.main_port) if record.main_port else None
        if handle is None:
            return ServiceStatus(record.name, State.STOPPED, None, port, None, log)
        if not process.is_alive(handle):
            return ServiceStatus(record.name, State.FAILED, handle.pid, port, None, log)
        uptime = time.time() - record.started_at if record.started_at else None
        return ServiceStatus(record.name, State.RUNNING, handle.pid, port, uptime, log)

    def records(self) -> list[ServiceRecord]:
        """The raw state records (pids, process groups, ports), e.g. for leak checks."""
        return self._state.records()

    def settings(self) -> dict[str, dict[str, object]]:
        """The SDK settings of every running service, by service name."""
        running = {s.name for s in self.status() if s.state is State.RUNNING}
        return {r.name: r.settings for r in self._state.records() if r.name in running}

    def env(self) -> dict[str, str]:
        """The ``CARBON_<SERVICE>__<FIELD>`` variables that point the SDK at the running stack."""
        from carbon_sdk.settings import env_var

        return {
            env_var(service, key): str(value)
            for service, values in self.settings().items()
            for key, value in values.items()
        }

    def log_path(self, name: str) -> Path:
        """The log file of service ``name``."""
        return self._state.log_path(name)


def _generate_secret(length: int = 32) -> str:
    """A random alphanumeric credential (no characters that need quoting anywhere)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def signal_of(record: ServiceRecord | None) -> int:
    """The stop signal recorded for a service (SIGTERM if unknown)."""
    return record.stop_signal if record else 15


def timeout_of(record: ServiceRecord | None) -> float:
    """The stop timeout recorded for a service."""
    return record.stop_timeout if record else 15.0


def dependency_levels(
    deps: Mapping[str, Iterable[str]], names: Sequence[str], *, strict: bool = True
) -> list[list[str]]:
    """``names`` plus their dependencies, grouped so each level only depends on earlier ones.

    With ``strict``, an unknown name or dependency raises :class:`DevStackError`; otherwise
    dependencies outside ``deps`` are ignored (used by ``down``, which trusts recorded state).
    """
    closure: list[str] = []
    pending = list(names)
    while pending:
        name = pending.pop(0)
        if name in closure:
            continue
        if name not in deps:
            if strict:
                known = ", ".join(deps) or "none"
                raise DevStackError(f"unknown service {name!r} (known: {known})")
            continue
        closure.append(name)
        pending.extend(deps[name])
    order = [n for n in deps if n in closure]
    done: set[str] = set()
    levels: list[list[str]] = []
    while len(done) < len(order):
        level = [
            n
            for n in order
            if n not in done and all(d in done or d not in closure for d in deps[n])
        ]
        if not level:
            raise DevStackError(f"dependency cycle among {sorted(set(order) - done)}")
        levels.append(level)
        done.update(level)
    return levels


def _in_parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """Apply ``fn`` to every item concurrently; re-raise the first failure after all finish."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(fn, item) for item in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if len(errors) > 1:
        raise DevStackError("\n\n".join(str(e) for e in errors)) from errors[0]
    if errors and errors[0] is not None:
        raise errors[0]
    return [f.result() for f in futures]
