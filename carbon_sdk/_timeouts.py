"""What bounds a call, once for every connector (see docs/configuration.md, "What bounds a call").

* ``connect_timeout`` bounds establishing a connection *including* the first byte of the
  server's answer to the first request on it: an endpoint that accepts and never answers
  fails after about ``connect_timeout``. A wait for that first byte that times out is final.
* ``request_timeout`` bounds each later wait on a connection that has answered.
* The attempts of one request share one :class:`Deadline`: :func:`budget` seconds from the
  start of its first attempt. No retry starts after it.
* Errors say the limit and the real time waited, :class:`Waited`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from carbon_sdk.settings import ServiceSettings

_MARK = "carbon_waited"


def budget(settings: ServiceSettings, *, answered: bool) -> float:
    """Seconds all attempts of one request may take together: ``connect_timeout`` until the
    service has answered once, then ``connect_timeout + request_timeout``."""
    if not answered:
        return settings.connect_timeout
    return settings.connect_timeout + settings.request_timeout


def first_wait(settings: ServiceSettings, *, answered: bool) -> float:
    """The longest wait for data in one attempt: the first byte on a connection that has not
    answered yet is bounded by ``connect_timeout``, later waits by ``request_timeout``."""
    return settings.request_timeout if answered else settings.connect_timeout


@dataclass(frozen=True)
class Deadline:
    """The end of a request's time, shared by its attempts."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        """Seconds since the first attempt started."""
        return time.monotonic() - self.start

    def remaining(self) -> float:
        """Seconds left (0 once passed)."""
        return max(0.0, self.seconds - self.elapsed())

    @property
    def expired(self) -> bool:
        """Whether no time is left."""
        return self.remaining() <= 0

    def cap(self, wait: float) -> float:
        """``wait`` cut to the time left (at least a millisecond: 0 means "no timeout" to
        socket libraries)."""
        return max(0.001, min(wait, self.remaining()))


@dataclass(frozen=True)
class Waited:
    """How long a call waited in vain, for error messages."""

    limit: float
    elapsed: float

    def __str__(self) -> str:
        return f"no answer within {self.limit:g} s (waited {self.elapsed:.1f} s)"


def mark(exc: BaseException, waited: Waited) -> None:
    """Record on a client library's exception how long the call waited (read by
    :func:`waited_on` when the exception is classified)."""
    setattr(exc, _MARK, waited)


def waited_on(exc: BaseException) -> Waited | None:
    """The :class:`Waited` recorded on ``exc`` by :func:`mark`, if any."""
    waited = getattr(exc, _MARK, None)
    return waited if isinstance(waited, Waited) else None
