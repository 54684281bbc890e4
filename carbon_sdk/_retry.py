"""Retries of transient failures, once for every connector (stamina: exponential backoff with
jitter), bounded like every call (see :mod:`._timeouts`): at most ``max_attempts`` attempts, all
within ``connect_timeout`` of the first.

Only what is safe to repeat goes through here: opening a connection (nothing has been sent) or
a read the caller marks as idempotent. A statement that was sent, a write, is never retried."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from carbon_sdk._timeouts import budget

if TYPE_CHECKING:
    from carbon_sdk.settings import ServiceSettings

T = TypeVar("T")

# stamina logs each scheduled retry ("stamina.retry_scheduled") at WARNING on the "stamina"
# logger. With no logging configured, Python's last-resort handler printed those bare lines in
# every notebook cell that retried a refused connection. Like the SDK's own loggers they now go
# only where the application's logging configuration sends them.
logging.getLogger("stamina").addHandler(logging.NullHandler())

WAIT_INITIAL = 0.05  # seconds before the second attempt; doubles, with up to as much jitter
WAIT_MAX = 1.0


def retry_transient(
    settings: ServiceSettings,
    call: Callable[[], T],
    transient: Callable[[Exception], bool],
    *,
    within: float | None = None,
) -> T:
    """``call()``, again after a backoff while it raises an exception ``transient`` accepts;
    any other exception, or the last attempt's, propagates unchanged. No attempt starts later
    than ``within`` seconds (default: ``connect_timeout``) after the first."""
    import stamina

    for attempt in stamina.retry_context(
        on=transient,
        attempts=settings.max_attempts,
        timeout=budget(settings, answered=False) if within is None else within,
        wait_initial=WAIT_INITIAL,
        wait_max=WAIT_MAX,
        wait_jitter=WAIT_INITIAL,
    ):
        with attempt:
            return call()
    raise AssertionError("unreachable: stamina re-raises the last attempt's exception")
