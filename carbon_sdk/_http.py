"""A requests transport adapter that applies carbon-sdk's call bounds (see :mod:`._timeouts`),
and repeats idempotent requests after a transient failure (see :mod:`._retry`).

Imported only by connectors that already imported requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from carbon_sdk._retry import retry_transient
from carbon_sdk._timeouts import Deadline, Waited, budget, first_wait

if TYPE_CHECKING:
    from carbon_sdk.settings import ServiceSettings

RETRIED_STATUSES = frozenset({429, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Idempotent = Callable[[requests.PreparedRequest], bool]
"""Whether a request may be sent again after a transient failure (a read)."""


def safe_method(request: requests.PreparedRequest) -> bool:
    """GET, HEAD and OPTIONS requests read only (RFC 9110): safe to send again."""
    return (request.method or "").upper() in SAFE_METHODS


class DeadlineExceeded(requests.exceptions.RequestException):
    """A request's deadline passed. Not a ``Timeout``: clients do not retry it."""


class ConnectionRefused(requests.exceptions.RequestException):
    """Every attempt within the deadline was refused (nothing listens on the port). Not a
    ``ConnectionError``: clients do not retry it, the adapter already has."""


RETRY_WINDOW = 2.0
"""Seconds after a failure within which the same request sent again is its client's retry
(the trino client's backoff: up to 0.2 s, 0.4 s, 0.8 s...); later it is a new request."""


@dataclass
class _Failed:
    """A request that failed in a way its client retries: its retries share ``deadline``."""

    key: tuple[str | None, str | None]  # method and URL
    deadline: Deadline
    attempts: int = 0
    at: float = 0.0  # when it last failed (set by DeadlineAdapter._remember)

    def retried_by(self, key: tuple[str | None, str | None], max_attempts: int) -> bool:
        """Whether a request for ``key`` sent now is a retry of this one."""
        recent = time.monotonic() - self.at <= RETRY_WINDOW
        return key == self.key and self.attempts < max_attempts and recent


class _RetriedStatus(Exception):
    """An answer whose status says "try again" (429, 502, 503, 504), to an idempotent request."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _refused(exc: Exception) -> bool:
    """The server's host refused the connection: nothing was sent, so any request, a write
    too, may be sent again."""
    if not isinstance(exc, requests.exceptions.ConnectionError) or not exc.args:
        return False
    reason = getattr(exc.args[0], "reason", None)  # urllib3's MaxRetryError: why it gave up
    return isinstance(getattr(reason, "__cause__", None), ConnectionRefusedError)


def _transient(exc: Exception) -> bool:
    """A refused, reset or broken connection, or a "try again" status; not a timeout (it used
    up the time the attempts share)."""
    if isinstance(exc, _RetriedStatus):
        return True
    return isinstance(exc, requests.exceptions.ConnectionError) and not isinstance(
        exc, requests.exceptions.Timeout
    )


class DeadlineAdapter(HTTPAdapter):
    """Sets each request's timeouts from the settings, whatever the caller passed.

    Until the server has answered once, the first byte of an answer must arrive within
    ``connect_timeout``; afterwards each wait is bounded by ``request_timeout``. The attempts of
    one request share one :class:`~carbon_sdk._timeouts.Deadline` (``connect_timeout``, then
    ``connect_timeout + request_timeout`` once the server has answered); once it has passed, an
    attempt fails at once with :class:`DeadlineExceeded`, which clients do not retry.

    Who repeats a failed request:

    * A refused connection, for every request: this adapter, after a short backoff, at most
      ``max_attempts`` times within the deadline (see :mod:`carbon_sdk._retry`); nothing was
      sent, so a write may be repeated too.
    * ``idempotent=None``: otherwise the client itself, by sending it again (a trino
      connection). A request for the same method and URL sent after a failure the client
      retries (a ``ConnectionError`` or ``Timeout``, or a 429, 502, 503 or 504 answer) is a
      retry of the failed one and shares its deadline, for at most ``max_attempts`` attempts
      (the client's limit) begun within :data:`RETRY_WINDOW` of the last failure, on the same
      thread; any other request gets a deadline of its own. Meant for one client
      that sends its requests one after the other. Refused to the end, the request fails with
      :class:`ConnectionRefused`, which the client does not retry: its own backoff (the trino
      client's: up to 0.2 s, 0.4 s, ...) knows no deadline, and a stopped server must fail
      within about a second.
    * ``idempotent=<predicate>``: this adapter, for the requests the predicate accepts (reads),
      also after a backoff on a reset or broken connection or a 429/502/503/504 answer, within
      the same bounds. Other requests (writes) are sent once, or again only after a refused
      connection. Mount it in place of a client library's own retrying adapter, whose backoff
      knows no deadline.
    """

    def __init__(self, settings: ServiceSettings, *, idempotent: Idempotent | None = None) -> None:
        super().__init__()
        self._settings = settings
        self._idempotent = idempotent
        self._answered = False
        # per thread (the client retries on the thread that sent): the last request, while the
        # client may retry it
        self._last = threading.local()

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send ``request`` within the time its deadline leaves."""
        if self._idempotent is not None:
            deadline = Deadline(self._budget())
            transient = _transient if self._idempotent(request) else _refused
            return self._repeated(deadline, request, args, kwargs, transient)
        # the client repeats a failed request itself: its retries share the failed one's deadline
        failed: _Failed | None = getattr(self._last, "failed", None)
        self._last.failed = None
        key = (request.method, request.url)
        if failed is None or not failed.retried_by(key, self._settings.max_attempts):
            failed = _Failed(key, Deadline(self._budget()))
        failed.attempts += 1
        try:
            response = self._repeated(failed.deadline, request, args, kwargs, _refused)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            if _refused(exc):
                raise ConnectionRefused(*exc.args, request=request) from exc
            self._remember(failed)  # the client retries these
            raise
        if response.status_code in RETRIED_STATUSES:
            self._remember(failed)
        return response

    def _remember(self, failed: _Failed) -> None:
        failed.at = time.monotonic()
        self._last.failed = failed

    def _budget(self) -> float:
        return budget(self._settings, answered=self._answered)

    def _repeated(
        self,
        deadline: Deadline,
        request: requests.PreparedRequest,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        transient: Callable[[Exception], bool],
    ) -> requests.Response:
        """Attempts of ``request``, again after a failure ``transient`` accepts; the last "try
        again" answer is returned as is."""

        def answered() -> requests.Response:
            response = self._attempt(deadline, request, args, kwargs)
            if response.status_code in RETRIED_STATUSES:
                raise _RetriedStatus(response)
            return response

        try:
            if deadline.expired:  # a retry begun too late: it fails at once, unsent
                return answered()
            return retry_transient(self._settings, answered, transient, within=deadline.remaining())
        except _RetriedStatus as exc:
            return exc.response

    def _attempt(
        self,
        deadline: Deadline,
        request: requests.PreparedRequest,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> requests.Response:
        """One attempt, its timeouts cut to what ``deadline`` leaves."""
        wait = first_wait(self._settings, answered=self._answered)
        if deadline.expired:
            raise DeadlineExceeded(
                str(Waited(deadline.seconds, deadline.elapsed())), request=request
            )
        kwargs["timeout"] = (deadline.cap(self._settings.connect_timeout), deadline.cap(wait))
        try:
            response = super().send(request, *args, **kwargs)
        except requests.exceptions.Timeout as exc:
            waited = str(Waited(wait, deadline.elapsed()))
            final = DeadlineExceeded if deadline.expired else type(exc)
            raise final(waited, request=request) from exc
        self._answered = True
        return response


def bounded(
    session: requests.Session,
    settings: ServiceSettings,
    *,
    idempotent: Idempotent | None = None,
) -> requests.Session:
    """``session`` with a :class:`DeadlineAdapter` mounted for http:// and https:// (replacing
    whatever adapter, and retry policy, it had)."""
    adapter = DeadlineAdapter(settings, idempotent=idempotent)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
