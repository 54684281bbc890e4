"""Start, watch and stop one server process in its own process group.

A process is identified by its pid plus its start time (from ``/proc``), so a pid the kernel
reused for an unrelated process is never mistaken for ours and never signalled. Stopping
signals the whole process group recorded at start, never a process found by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
# Popen objects of the processes this interpreter started, so they can be polled and reaped.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessHandle:
    """What is recorded about a started process: enough to find and stop exactly it later."""

    pid: int
    pgid: int
    start_ticks: int | None


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` from the state onwards (index 0 = state), or None."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None without ``/proc``."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path,
    user: str | None = None,
) -> ProcessHandle:
    """Start ``argv`` in a new session (so its own process group), output appended to the log."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
    _CHILDREN[proc.pid] = proc
    return ProcessHandle(pid=proc.pid, pgid=proc.pid, start_ticks=start_ticks(proc.pid))


def exit_code(handle: ProcessHandle) -> int | None:
    """The exit code if this interpreter started the process and it has exited, else None."""
    child = _CHILDREN.get(handle.pid)
    return child.poll() if child else None


def is_alive(handle: ProcessHandle) -> bool:
    """Whether the recorded process still runs (not exited, not a zombie, pid not reused)."""
    child = _CHILDREN.get(handle.pid)
    if child is not None and child.poll() is not None:
        return False
    try:
        os.kill(handle.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _stat_fields(handle.pid)
    if fields is None:
        return not _PROC.is_dir()
    return fields[0] != "Z" and (
        handle.start_ticks is None or int(fields[19]) == handle.start_ticks
    )


def group_members(handle: ProcessHandle) -> list[int]:
    """Live (non-zombie) processes in the recorded process group started no earlier than it."""
    if not _PROC.is_dir():
        try:
            os.killpg(handle.pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [handle.pgid]
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z" or int(fields[2]) != handle.pgid:
            continue
        if handle.start_ticks is None or int(fields[19]) >= handle.start_ticks:
            members.append(int(entry.name))
    return members


def stop(handle: ProcessHandle, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Send ``sig`` to the process group, wait for it to empty, SIGKILL it after ``timeout``.

    Safe to call on a process that already exited: leftovers of its group are still stopped,
    and nothing is signalled if no process of the group remains.
    """
    if not group_members(handle):
        _reap(handle)
        return
    _signal_group(handle, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(handle)
        if not group_members(handle):
            return
        time.sleep(0.05)
    _signal_group(handle, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while group_members(handle) and time.monotonic() < deadline:
        _reap(handle)
        time.sleep(0.05)
    _reap(handle)


def _signal_group(handle: ProcessHandle, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(handle.pgid, sig)


def _reap(handle: ProcessHandle) -> None:
    """Collect the exit status of our own child so it does not linger as a zombie."""
    child = _CHILDREN.get(handle.pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[handle.pid]


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
