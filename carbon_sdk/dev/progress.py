"""Progress reporting for ``dev up``/``dev down``: live per-service lines on a terminal, plain
log lines otherwise.

The supervisor calls one :class:`Progress` from several threads (services of one dependency
level start in parallel). A service reports a download through
:meth:`~carbon_sdk.dev.service.ServiceContext.downloading`, which lands in
:meth:`Progress.downloading` with the bytes so far; size and speed are formatted here.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from types import TracebackType

    from rich.progress import Progress as RichBar
    from rich.progress import TaskID


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KB'``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Receives the lifecycle events of each service; this base class ignores them all."""

    def __init__(self) -> None:
        self._download_started: dict[str, float] = {}

    def already_running(self, name: str, pid: int) -> None:
        """``name`` was running before ``up`` (pid ``pid``) and was left alone."""

    def starting(self, name: str) -> None:
        """``name`` is being prepared and started."""

    def downloading(self, name: str, done: int, total: int | None) -> None:
        """``name`` is downloading an artifact: ``done`` of ``total`` bytes (None: unknown)."""

    def ready(self, name: str, seconds: float) -> None:
        """``name`` passed its readiness probe ``seconds`` after it was started."""

    def failed(self, name: str, message: str) -> None:
        """``name`` did not start; ``message`` says why."""

    def stopped(self, name: str) -> None:
        """``name`` was stopped by ``down``."""

    def download_text(self, name: str, done: int, total: int | None) -> str:
        """``'downloading 12.0 MB / 300.0 MB at 8.1 MB/s'`` for the download of ``name``."""
        now = time.monotonic()
        started = self._download_started.setdefault(name, now)
        speed = done / (now - started) if now > started else 0.0
        size = format_bytes(done) + (f" / {format_bytes(total)}" if total else "")
        return f"downloading {size} at {format_bytes(speed)}/s"

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class PlainProgress(Progress):
    """One log line per event, for pipes, CI logs and files (downloads at most every 2 s)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._last_download: dict[str, float] = {}

    def _line(self, name: str, text: str) -> None:
        with self._lock:
            print(f"{name}: {text}", file=self._stream, flush=True)

    def already_running(self, name: str, pid: int) -> None:
        self._line(name, f"already running (pid {pid})")

    def starting(self, name: str) -> None:
        self._line(name, "starting")

    def downloading(self, name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last_download.get(name, 0.0) >= 2.0 or done == total:
            self._last_download[name] = now
            self._line(name, self.download_text(name, done, total))

    def ready(self, name: str, seconds: float) -> None:
        self._line(name, f"ready in {seconds:.1f} s")

    def failed(self, name: str, message: str) -> None:
        self._line(name, f"FAILED: {message.splitlines()[0] if message else ''}")

    def stopped(self, name: str) -> None:
        self._line(name, "stopped")


class RichProgress(Progress):
    """A live table with one spinner line per service, for interactive terminals."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import Progress as RichBar
        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        self._bar: RichBar = RichBar(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("[bold]{task.fields[service]:<10}"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def _update(self, name: str, text: str, *, done: bool = False) -> None:
        with self._lock:
            if name not in self._tasks:
                self._tasks[name] = self._bar.add_task(text, service=name, total=1)
            self._bar.update(self._tasks[name], description=text, completed=1 if done else 0)
            if done:
                self._bar.stop_task(self._tasks[name])

    def already_running(self, name: str, pid: int) -> None:
        self._update(name, f"already running (pid {pid})", done=True)

    def starting(self, name: str) -> None:
        self._update(name, "starting")

    def downloading(self, name: str, done: int, total: int | None) -> None:
        self._update(name, self.download_text(name, done, total))

    def ready(self, name: str, seconds: float) -> None:
        self._update(name, f"[green]ready in {seconds:.1f} s", done=True)

    def failed(self, name: str, message: str) -> None:
        first = message.splitlines()[0] if message else ""
        self._update(name, f"[red]failed: {first}", done=True)

    def stopped(self, name: str) -> None:
        self._update(name, "stopped", done=True)

    def __enter__(self) -> Progress:
        self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()


def for_terminal(stream: TextIO | None = None) -> Progress:
    """A :class:`RichProgress` when ``stream`` (default stderr) is a terminal, else plain lines."""
    out = stream or sys.stderr
    return RichProgress() if out.isatty() else PlainProgress(out)
