"""The on-disk state of one stack under ``CARBON_DEV_HOME``.

Layout::

    $CARBON_DEV_HOME/
        .lock                   held by up/down so two commands never race
        shared/                 files several services use (the stack's CA)
        state/<service>.json    pid, process group, ports, secrets, settings of each service
        logs/<service>.log      the server's output (the previous run's is <service>.log.1)
        <service>/              the service's data and config files
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from carbon_sdk._files import locked, write_atomic, xdg_home

from .process import ProcessHandle

HOME_ENV = "CARBON_DEV_HOME"
DEFAULT_PROFILE = "dev"


def _standard_home() -> Path:
    return xdg_home("data") / "carbon-sdk" / "dev"


def default_home() -> Path:
    """``$CARBON_DEV_HOME``, else ``$XDG_DATA_HOME/carbon-sdk/dev`` (``~/.local/share/...``)."""
    if explicit := os.environ.get(HOME_ENV):
        return Path(explicit).expanduser().absolute()
    return _standard_home()


def profile_name(home: Path) -> str:
    """The config profile the stack rooted at ``home`` writes: ``dev`` for the standard home
    (``$XDG_DATA_HOME/carbon-sdk/dev``), else ``dev-<directory name>-<6 hex digits of its
    path>``, so two stacks never write the same profile."""
    resolved = home.expanduser().resolve()
    if resolved == _standard_home().expanduser().resolve():
        return DEFAULT_PROFILE
    slug = re.sub(r"[^a-z0-9]+", "-", resolved.name.lower()).strip("-") or "stack"
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:6]
    return f"{DEFAULT_PROFILE}-{slug}-{digest}"


@dataclass
class ServiceRecord:
    """What the stack remembers about one service between commands."""

    name: str
    depends_on: list[str] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    main_port: str | None = None
    secrets: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)
    pid: int | None = None
    pgid: int | None = None
    start_ticks: int | None = None
    started_at: float | None = None
    stop_signal: int = 15
    stop_timeout: float = 15.0

    @property
    def handle(self) -> ProcessHandle | None:
        """The recorded process, or None when the service was never started or was stopped."""
        if self.pid is None or self.pgid is None:
            return None
        return ProcessHandle(self.pid, self.pgid, self.start_ticks)

    def attach(self, handle: ProcessHandle) -> None:
        """Record a freshly started process."""
        self.pid, self.pgid, self.start_ticks = handle.pid, handle.pgid, handle.start_ticks
        self.started_at = time.time()

    def detach(self) -> None:
        """Forget the process (it was stopped or never became ready)."""
        self.pid = self.pgid = self.start_ticks = None
        self.started_at = None


class StateDir:
    """Reads and writes the state files of the stack rooted at ``home``."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.state_dir = home / "state"
        self.logs_dir = home / "logs"
        self.shared_dir = home / "shared"

    def log_path(self, name: str) -> Path:
        """The log file of service ``name``."""
        return self.logs_dir / f"{name}.log"

    def service_home(self, name: str) -> Path:
        """The data/config directory of service ``name``."""
        return self.home / name

    def load(self, name: str) -> ServiceRecord | None:
        """The record of ``name``, or None if there is none."""
        try:
            raw = json.loads((self.state_dir / f"{name}.json").read_text())
        except FileNotFoundError:
            return None
        return ServiceRecord(**raw)

    def records(self) -> list[ServiceRecord]:
        """All records, sorted by name."""
        if not self.state_dir.is_dir():
            return []
        names = sorted(p.stem for p in self.state_dir.glob("*.json"))
        return [r for n in names if (r := self.load(n)) is not None]

    def save(self, record: ServiceRecord) -> None:
        """Write ``record`` atomically (mode 0600: it holds generated credentials)."""
        write_atomic(self.state_dir / f"{record.name}.json", json.dumps(asdict(record), indent=2))

    def remove(self, name: str) -> None:
        """Forget service ``name``."""
        (self.state_dir / f"{name}.json").unlink(missing_ok=True)

    def locked(self) -> AbstractContextManager[None]:
        """Hold the stack's lock (blocks while another ``up``/``down`` runs on this home)."""
        return locked(self.home / ".lock")
