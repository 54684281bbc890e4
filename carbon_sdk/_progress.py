"""Progress bars for long transfers: shown only when a person is watching.

A connector wraps a transfer, a query or a publish in :func:`progress_bar` and calls the
``update(n)`` it yields from any thread. In a Jupyter kernel or on a terminal that is a
``tqdm.auto`` bar; in tests, CI logs, pipes and scheduled jobs it is a no-op (and tqdm is not
even imported).
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from carbon_sdk._lazy import import_client

Update = Callable[[int], None]
AUTO_DELAY = 1.0
T = TypeVar("T")


def interactive() -> bool:
    """Whether output is watched: a Jupyter kernel (notebook, lab, VS Code) or a terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is not None and "ipykernel" in sys.modules:
        shell = getattr(ipython, "get_ipython", lambda: None)()
        if type(shell).__name__ == "ZMQInteractiveShell":
            return True
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and stream.isatty()


def _ignore(_: int) -> None:
    return None


@contextmanager
def progress_bar(
    total: int | None,
    description: str,
    *,
    extra: str,
    enabled: bool | None = None,
    unit: str = "B",
) -> Iterator[Update]:
    """Yield a thread-safe ``update(n)`` advancing a bar of ``total`` units.

    Args:
        total: the expected amount (bytes by default), None when unknown.
        description: the bar's label, e.g. ``"upload s3://bucket/key"``.
        extra: the carbon-sdk extra that brings tqdm (for the install hint).
        enabled: force the bar on or off; None shows it only when :func:`interactive`, and
            only once the work has taken :data:`AUTO_DELAY` seconds (no bar flashes by for a
            quick query).
        unit: ``"B"`` scales as KB/MB/GB; anything else (``"rows"``) is counted as is.
    """
    if not (interactive() if enabled is None else enabled):
        yield _ignore
        return
    delay = AUTO_DELAY if enabled is None else 0.0
    with warnings.catch_warnings():  # tqdm.auto warns when it falls back to the console bar
        warnings.simplefilter("ignore")
        tqdm = import_client("tqdm.auto", extra).tqdm
    scaled = unit == "B"
    bar = tqdm(
        total=total,
        desc=description,
        unit=unit,
        unit_scale=scaled,
        unit_divisor=1024 if scaled else 1000,
        leave=True,
        delay=delay,
    )
    lock = threading.Lock()

    def update(n: int) -> None:
        with lock:
            bar.update(n)

    try:
        yield update
    finally:
        bar.close()


def counted(items: Iterable[T], update: Update, every: int = 1000) -> Iterable[T]:
    """``items``, advancing ``update`` every ``every`` items and at the end; ``items`` itself
    when the bar is off (no cost per item)."""
    if update is _ignore:
        return items
    return _counting(items, update, every)


def _counting(items: Iterable[T], update: Update, every: int) -> Iterator[T]:
    pending = 0
    for item in items:
        yield item
        pending += 1
        if pending == every:
            update(pending)
            pending = 0
    if pending:
        update(pending)
