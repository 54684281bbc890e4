"""How a server of the local stack is described: :class:`Service` and :class:`ServiceContext`.

Adding a server to the stack is one module with a :class:`Service` subclass plus one line in
:mod:`carbon_sdk.dev.registry`. The supervisor drives each service through the same steps::

    prepare(ctx)        one-time setup, idempotent (initdb, config files, downloads)
    command(ctx)        the foreground server command; runs in its own process group
    probe(ctx)          polled until True, for at most ``ready_timeout`` seconds
    after_start(ctx)    idempotent provisioning against the running server (databases, buckets)
    settings(ctx)       the connector settings the SDK needs, exported as CARBON_<NAME>__<FIELD>
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from carbon_sdk.errors import CarbonError

from .process import tail
from .progress import Progress

if TYPE_CHECKING:
    from .tls import ServerCertificate


class DevStackError(CarbonError):
    """The local stack could not do what was asked (start, stop, find a binary)."""


class ServiceStartError(DevStackError):
    """A service did not become ready; the message ends with the last lines of its log."""

    def __init__(self, service: str, reason: str, log_path: Path) -> None:
        self.service = service
        self.log_path = log_path
        log_tail = tail(log_path) or "(log is empty)"
        super().__init__(
            f"{service} did not start: {reason}\n--- last lines of {log_path} ---\n{log_tail}\n---"
        )


@dataclass
class ServiceContext:
    """Everything a service step may use; ``ports``, ``secrets`` and ``paths`` persist in state.

    Attributes:
        name: the service name.
        home: the service's own directory under ``CARBON_DEV_HOME`` (data, config files).
        log_path: the server's log file (stdout and stderr).
        ports: the allocated ports by name (see :attr:`Service.ports`).
        secrets: generated credentials by name (see :attr:`Service.secrets`), stable across runs.
        shared_dir: the stack's directory for files several services use, such as the stack's
            CA (see :func:`carbon_sdk.dev.tls.stack_ca`); removed by ``down --purge``.
        paths: directories the service created outside ``home`` (removed by ``down --purge``).
        progress: where progress goes; use :meth:`downloading` to report a download.
        dependencies: the settings of the services in :attr:`Service.depends_on`, ready when
            this service starts; read them with :meth:`dependency`.
    """

    name: str
    home: Path
    log_path: Path
    ports: dict[str, int]
    secrets: dict[str, str]
    shared_dir: Path
    paths: dict[str, str] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)
    dependencies: dict[str, dict[str, object]] = field(default_factory=dict)

    def ca_pem(self) -> Path:
        """The stack CA's certificate, what clients trust (made by the services that use TLS,
        with :func:`carbon_sdk.dev.tls.stack_ca`)."""
        from .tls import CA

        return CA.of_stack(self.shared_dir).cert_pem

    def server_certificate(self, directory: Path) -> ServerCertificate:
        """``directory/server.pem``, a keystore for this machine's loopback names signed by the
        stack's CA (both made or renewed as needed; see :mod:`carbon_sdk.dev.tls`)."""
        from .tls import server_certificate, stack_ca

        return server_certificate(stack_ca(self.shared_dir), directory)

    def dependency(self, name: str) -> dict[str, object]:
        """The settings of ``name``, a service this one depends on (e.g. ``{"host": ...}``).

        This is how a service reads another one's state: never through its files.
        """
        try:
            return self.dependencies[name]
        except KeyError:
            raise DevStackError(
                f"{self.name} needs {name} running first: declare it in depends_on"
                f" and start both with `carbon-sdk dev up {self.name}`"
            ) from None

    def downloading(self, done: int, total: int | None) -> None:
        """Report ``done`` of ``total`` bytes downloaded (size and speed are shown live)."""
        self.progress.downloading(self.name, done, total)

    def run(
        self,
        argv: Sequence[str],
        *,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        timeout: float = 120.0,
    ) -> str:
        """Run a one-shot helper command (as ``user``), return its stdout; raise on failure.

        Its output is appended to the service log, so a failure shows up in ``dev logs``.
        """
        try:
            done = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                env=dict(env) if env is not None else None,
                cwd=cwd or self.home,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DevStackError(f"{self.name}: {argv[0]} failed: {exc}") from exc
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
        if done.returncode != 0:
            output = (done.stderr or done.stdout).strip()
            raise DevStackError(
                f"{self.name}: {' '.join(argv)} exited with {done.returncode}:\n{output}"
            )
        return done.stdout


class Service(ABC):
    """A server of the local stack. Subclasses set the class attributes and the two abstract
    methods; the other steps default to doing nothing.

    Attributes:
        name: the service name, also the settings section (``CARBON_<NAME>__<FIELD>``).
        depends_on: services that must be ready first (started by ``up`` automatically).
        ports: names of the TCP ports to allocate on 127.0.0.1.
        main_port: the port ``dev status`` shows.
        port_offset: if set, ``port + port_offset`` is kept free too for every port.
        secrets: names of credentials to generate once per ``CARBON_DEV_HOME``.
        default: whether ``up`` without arguments starts it (False: only when named).
        ready_timeout: seconds the readiness probe may take before ``up`` fails.
        stop_signal: the signal for a clean, fast shutdown.
        stop_timeout: seconds to wait after ``stop_signal`` before SIGKILL.
    """

    name: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()
    ports: ClassVar[tuple[str, ...]] = ()
    main_port: ClassVar[str]
    port_offset: ClassVar[int | None] = None
    secrets: ClassVar[tuple[str, ...]] = ()
    default: ClassVar[bool] = True
    ready_timeout: ClassVar[float] = 30.0
    stop_signal: ClassVar[int] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 15.0

    def prepare(self, ctx: ServiceContext) -> None:  # noqa: B027 - optional step
        """One-time setup before the server starts; must be idempotent."""

    @abstractmethod
    def command(self, ctx: ServiceContext) -> list[str]:
        """The server's foreground command line."""

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """Environment variables added to the inherited environment of the server."""
        return {}

    def user(self, ctx: ServiceContext) -> str | None:
        """The OS user to run the server as (None: the current user)."""
        return None

    def workdir(self, ctx: ServiceContext) -> Path:
        """The server's working directory (default: the service home)."""
        return ctx.home

    @abstractmethod
    def probe(self, ctx: ServiceContext) -> bool:
        """Whether the server is ready; polled, so it must return quickly."""

    def after_start(self, ctx: ServiceContext) -> None:  # noqa: B027 - optional step
        """Provision the running server (databases, buckets); must be idempotent."""

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """The SDK settings of this service, e.g. ``{"host": "127.0.0.1", "port": 5432}``."""
        return {}


def http_ok(url: str, timeout: float = 0.5, context: ssl.SSLContext | None = None) -> bool:
    """Whether a GET of ``url`` answers with a 2xx status (``context``: for an https URL)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:  # noqa: S310
            status: int = response.status
    except (urllib.error.URLError, OSError):
        return False
    return 200 <= status < 300
