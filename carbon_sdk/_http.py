"""A requests transport adapter that applies carbon-sdk's call bounds (see :mod:`._timeouts`).

Imported only by connectors that already imported requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter

from carbon_sdk._timeouts import Deadline, Waited, budget, first_wait

if TYPE_CHECKING:
    from carbon_sdk.settings import ServiceSettings

RETRIED_STATUSES = frozenset({429, 502, 503, 504})


class DeadlineExceeded(requests.exceptions.RequestException):
    """A request's deadline passed. Not a ``Timeout``: clients do not retry it."""


class DeadlineAdapter(HTTPAdapter):
    """Sets each request's timeouts from the settings, whatever the caller passed.

    Until the server has answered once, the first byte of an answer must arrive within
    ``connect_timeout``; afterwards each wait is bounded by ``request_timeout``. Requests sent
    after a failure (an exception, or a status the client retries: 429, 502, 503, 504) are
    retries of the failed one and share its :class:`~carbon_sdk._timeouts.Deadline`; once it
    has passed, a retry fails at once. Meant for one client that sends its requests one after
    the other (a trino connection), which retries by sending again; a timeout that leaves no
    time raises :class:`DeadlineExceeded`, which such clients do not retry.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__()
        self._settings = settings
        self._answered = False
        self._deadline: Deadline | None = None

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send ``request`` within the time its deadline leaves."""
        deadline = self._deadline or Deadline(budget(self._settings, answered=self._answered))
        self._deadline = deadline
        wait = first_wait(self._settings, answered=self._answered)
        if deadline.expired:
            raise DeadlineExceeded(str(Waited(wait, deadline.elapsed())), request=request)
        kwargs["timeout"] = (deadline.cap(self._settings.connect_timeout), deadline.cap(wait))
        try:
            response = super().send(request, *args, **kwargs)
        except requests.exceptions.Timeout as exc:
            waited = str(Waited(wait, deadline.elapsed()))
            final = DeadlineExceeded if deadline.expired else type(exc)
            raise final(waited, request=request) from exc
        self._answered = True
        if response.status_code not in RETRIED_STATUSES:
            self._deadline = None
        return response
