"""Process-tree helpers for the dev-stack tests."""

from __future__ import annotations

import psutil


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants at this moment."""
    return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]


def listening(pids: list[int]) -> set[tuple[str, int]]:
    """(ip, port) of every listening inet socket of ``pids``.

    A short-lived helper (an autovacuum worker, a kernel-spec probe) may exit between
    listing and inspecting; it listens on nothing, so it is skipped, not an error.
    """
    found: set[tuple[str, int]] = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found
