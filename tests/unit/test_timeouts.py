"""What bounds a call (docs/configuration.md): every connector, through its real client library
over the network, against a listener that accepts connections and never answers."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from listeners import Endpoint, closed_port
from reliability.report import FaultLog

from carbon_sdk import postgres, s3, trino
from carbon_sdk.errors import Unreachable
from carbon_sdk.settings.carbon import configure

CONNECT_TIMEOUT = 2.0
# generous for a loaded 2-core machine; without the shared deadline the calls took 10-900 s
BOUND = 2 * CONNECT_TIMEOUT + 1.5

CALLS: dict[str, Callable[[], Any]] = {
    "postgres-psycopg": postgres.connect,
    "postgres-adbc": lambda: postgres.query("select 1"),
    "s3": lambda: s3.ls("s3://scratch/"),
    "trino": lambda: trino.query("select 1", progress=False),
}


def point_at(port: int, **bounds: float) -> None:
    configure(
        postgres={"host": "127.0.0.1", "port": port, "user": "u", "password": "pw-x1", **bounds},
        s3={
            "endpoint_url": f"http://127.0.0.1:{port}",
            "access_key_id": "AKIA",
            "secret_access_key": "sk-x1",
            **bounds,
        },
        trino={"host": "127.0.0.1", "port": port, "user": "u", **bounds},
    )


@pytest.fixture
def hang() -> Iterator[Endpoint]:
    endpoint = Endpoint("hang")
    yield endpoint
    endpoint.close()


def timed_failure(name: str) -> tuple[float, str]:
    """The seconds call ``name`` took to raise Unreachable, and its message."""
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        CALLS[name]()
    return time.monotonic() - started, str(info.value)


def warm_up(name: str) -> None:
    """Import the call's client libraries (seconds on a loaded machine) before timing it."""
    point_at(closed_port())
    with pytest.raises(Unreachable):
        CALLS[name]()


def waited(message: str) -> float:
    match = re.search(r"no answer within [\d.]+ s \(waited (\d+\.\d) s\)", message)
    assert match, message
    return float(match.group(1))


@pytest.mark.parametrize("name", CALLS)
def test_a_silent_endpoint_fails_within_connect_timeout(
    name: str, hang: Endpoint, fault_log: FaultLog
) -> None:
    warm_up(name)
    point_at(hang.port, connect_timeout=CONNECT_TIMEOUT)  # request_timeout 300, max_attempts 3
    elapsed, message = timed_failure(name)
    fault_log(name.split("-")[0], "hang", Unreachable, elapsed, BOUND)
    assert CONNECT_TIMEOUT - 0.1 <= elapsed < BOUND, message
    # the time waited on the endpoint, not counting local work such as creating a boto3 client
    assert CONNECT_TIMEOUT - 0.1 <= waited(message) <= elapsed + 0.1, (elapsed, message)


@pytest.mark.parametrize("name", CALLS)
def test_retries_share_one_deadline(name: str, hang: Endpoint) -> None:
    """Five attempts of 1 s each would take over 5 s; the silent endpoint sees one attempt."""
    warm_up(name)
    point_at(hang.port, connect_timeout=CONNECT_TIMEOUT, request_timeout=1.0, max_attempts=5)
    elapsed, message = timed_failure(name)
    assert elapsed < 4.5, message
    assert hang.accepted == 1, f"{hang.accepted} connections: {message}"


@pytest.mark.parametrize(
    ("idempotent", "raised"),
    [
        (None, "ConnectionRefused"),  # the client retries ConnectionError: it must not see one
        ("safe_method", "ConnectionError"),  # the adapter replaced the client's retries
    ],
)
def test_a_refused_connection_is_retried_by_the_adapter_only(
    idempotent: str | None, raised: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing was sent on a refused connection, so even a POST is attempted again, within
    one deadline, ``max_attempts`` times; a client that repeats requests itself (trino) gets an
    error it does not retry, since its own backoff (0.2 s, 0.4 s, ...) knows no deadline."""
    import requests

    from carbon_sdk import _http
    from carbon_sdk.trino import TrinoSettings

    sent: list[str] = []
    send = requests.adapters.HTTPAdapter.send

    def counted(self: Any, request: requests.PreparedRequest, *args: Any, **kw: Any) -> Any:
        sent.append(request.method or "")
        return send(self, request, *args, **kw)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", counted)
    settings = TrinoSettings(host="127.0.0.1", port=closed_port(), max_attempts=4)
    predicate = getattr(_http, idempotent) if idempotent else None
    session = _http.bounded(requests.Session(), settings, idempotent=predicate)
    with pytest.raises(requests.exceptions.RequestException) as info:
        session.post(f"http://127.0.0.1:{settings.port}/v1/statement", data=b"select 1")
    assert type(info.value).__name__ == raised
    assert "refused" in str(info.value).lower()
    assert sent == ["POST"] * 4


@pytest.mark.parametrize("first", ["refused", "hang"])
def test_a_request_after_a_final_failure_has_a_deadline_of_its_own(
    first: str, hang: Endpoint
) -> None:
    """A failure the client does not retry (refused to the end, or its deadline passed) leaves
    nothing behind on a kept trino session: a later request, once that deadline would have
    passed, still gets its own and reaches the endpoint (a stale one had failed every later
    request at once, unsent)."""
    import requests

    from carbon_sdk import _http
    from carbon_sdk.trino import TrinoSettings

    settings = TrinoSettings(host="127.0.0.1", port=hang.port, connect_timeout=0.5)
    session = _http.bounded(requests.Session(), settings)  # as trino's: the client retries
    port = closed_port() if first == "refused" else hang.port
    with pytest.raises(requests.exceptions.RequestException):
        session.get(f"http://127.0.0.1:{port}/v1/info")
    accepted = hang.accepted
    time.sleep(settings.connect_timeout + 0.1)  # the first request's deadline has passed
    with pytest.raises(_http.DeadlineExceeded, match=r"no answer within 0\.5 s"):
        session.get(f"http://127.0.0.1:{hang.port}/v1/info")
    assert hang.accepted == accepted + 1


def test_retries_print_nothing_unless_logging_is_configured() -> None:
    """A refused trino port is retried (stamina logs each retry at WARNING): in a notebook
    with no logging configured nothing is printed but the error; with logging configured,
    the retries are there."""
    import subprocess
    import sys

    script = (
        "import logging, sys\n"
        "if sys.argv[1] == 'configured': logging.basicConfig()\n"
        "from carbon_sdk import trino\n"
        "from carbon_sdk.errors import Unreachable\n"
        "try: trino.query('select 1', progress=False)\n"
        "except Unreachable: print('unreachable')\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "CARBON_TRINO__HOST": "127.0.0.1",
        "CARBON_TRINO__PORT": str(closed_port()),
        "CARBON_TRINO__USER": "u",
        "CARBON_TRINO__MAX_ATTEMPTS": "3",
    }
    printed = {
        mode: subprocess.run(
            [sys.executable, "-c", script, mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        for mode in ("bare", "configured")
    }
    assert printed["bare"].stdout == "unreachable\n"
    assert printed["bare"].stderr == "", printed["bare"].stderr
    assert printed["configured"].stdout == "unreachable\n"
    assert printed["configured"].stderr.count("stamina.retry_scheduled") == 2


def test_the_trino_clients_retries_of_a_request_share_its_deadline() -> None:
    """The trino client retries a 503 up to ``max_attempts`` times after a backoff that doubles
    (0.2 s, 0.4 s, ... 51 s for the tenth, times a random factor); its retries share one
    deadline, so the endpoint sees only the few that begin within ``connect_timeout``."""
    endpoint = Endpoint("unavailable")
    try:
        point_at(endpoint.port, connect_timeout=1.0, request_timeout=1.0, max_attempts=10)
        with pytest.raises(Unreachable, match=r"no answer within 1 s"):
            CALLS["trino"]()
    finally:
        endpoint.close()
    assert 2 <= endpoint.accepted < 10
