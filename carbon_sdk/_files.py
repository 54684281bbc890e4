"""Small file helpers shared by the settings and the local stack (stdlib only, no side effects).

:func:`xdg_home` finds the user's config/cache/data base directory, :func:`locked` serializes
processes on a lock file, :func:`write_atomic` replaces a file so readers never see half of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

XdgKind = Literal["config", "cache", "data"]

_XDG: dict[str, tuple[str, tuple[str, ...]]] = {
    "config": ("XDG_CONFIG_HOME", (".config",)),
    "cache": ("XDG_CACHE_HOME", (".cache",)),
    "data": ("XDG_DATA_HOME", (".local", "share")),
}


def xdg_home(kind: XdgKind) -> Path:
    """The user's base directory of ``kind``: ``$XDG_CONFIG_HOME`` (``~/.config``),
    ``$XDG_CACHE_HOME`` (``~/.cache``) or ``$XDG_DATA_HOME`` (``~/.local/share``).

    An empty variable counts as unset, as the XDG Base Directory specification says.
    """
    variable, default = _XDG[kind]
    return Path(os.environ.get(variable) or Path.home().joinpath(*default))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its parents) for the block.

    Blocks while another process, or another open of the same file, holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` with permissions ``mode`` (creating parent directories).

    The text goes to a temporary file in the same directory, created with ``mode`` before any
    byte is written, which then replaces ``path``: readers see the old or the new file whole.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), mode)
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
