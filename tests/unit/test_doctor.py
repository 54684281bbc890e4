"""Doctor against local TCP servers that refuse, hang, or answer garbage.

The connector checks run their real client libraries (psycopg, boto3) over the network; the
servers here are deliberately broken endpoints, not imitations of PostgreSQL or S3.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import pytest

from carbon_sdk import doctor as run_doctor
from carbon_sdk import postgres
from carbon_sdk._registry import CONNECTORS
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.health import Status
from carbon_sdk.settings.carbon import configure

TIMEOUT = 2.0


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Endpoint:
    """A listening socket on 127.0.0.1 that treats every connection with ``behaviour``."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.behaviour == "garbage":
                conn.sendall(b"\x00\xffNOT A PROTOCOL\r\n\r\n" * 4)
                conn.close()
            else:  # "hang": accept, keep the connection open, never answer
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def endpoints() -> Iterator[dict[str, int]]:
    hang, garbage = Endpoint("hang"), Endpoint("garbage")
    yield {"refuse": closed_port(), "hang": hang.port, "garbage": garbage.port}
    hang.close()
    garbage.close()


def point_at(port: int, password: str = "canary-doctor-pw") -> None:
    configure(
        postgres={"host": "127.0.0.1", "port": port, "user": "u", "password": password},
        s3={
            "endpoint_url": f"http://127.0.0.1:{port}",
            "access_key_id": "AKIA",
            "secret_access_key": password,
        },
        trino={"host": "127.0.0.1", "port": port, "user": "u"},
        ray={"host": "127.0.0.1", "client_port": port, "dashboard_port": port, "token": password},
    )


@pytest.mark.parametrize("behaviour", ["refuse", "hang", "garbage"])
def test_broken_endpoints_fail_within_timeout(behaviour: str, endpoints: dict[str, int]) -> None:
    point_at(endpoints[behaviour])
    started = time.monotonic()
    report = run_doctor(timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + 1, f"doctor took {elapsed:.2f} s"
    assert report.exit_code == 1
    statuses = {r.service: r.status for r in report.results}
    assert set(statuses) == set(CONNECTORS)
    if behaviour in {"refuse", "hang"}:
        assert set(statuses.values()) == {Status.UNREACHABLE}
    else:
        assert all(s in {Status.UNREACHABLE, Status.ERROR} for s in statuses.values())
    for result in report.results:
        assert result.hint, result
        assert "canary-doctor-pw" not in result.detail + (result.hint or "")
    assert "canary-doctor-pw" not in report.to_json()


def test_checks_run_concurrently(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three checks that each take 1.5 s finish together in well under 3 x 1.5 s."""

    def slow(_settings: object) -> str:
        time.sleep(1.5)
        return "slow but fine"

    monkeypatch.setattr(postgres, "check", slow)
    configure(postgres={"host": "127.0.0.1", "user": "u"})
    started = time.monotonic()
    report = run_doctor("postgres", "postgres", "postgres", timeout=TIMEOUT)
    assert time.monotonic() - started < 2.5
    assert [r.status for r in report.results] == [Status.OK] * 3


def test_hanging_check_is_cut_off_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "check", lambda _s: time.sleep(30))
    configure(postgres={"host": "127.0.0.1", "user": "u"})
    started = time.monotonic()
    report = run_doctor("postgres", timeout=1.0)
    assert time.monotonic() - started < 2.0
    (result,) = report.results
    assert result.status is Status.UNREACHABLE
    assert "no answer within 1 s" in result.detail


def test_a_bug_in_a_check_is_reported_as_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_settings: object) -> str:
        raise KeyError("oops")

    monkeypatch.setattr(postgres, "check", broken)
    configure(postgres={"host": "127.0.0.1", "user": "u"})
    (result,) = run_doctor("postgres").results
    assert result.status is Status.ERROR
    assert "KeyError" in result.detail


def test_not_configured_is_ok_unless_required() -> None:
    report = run_doctor()
    assert {r.status for r in report.results} == {Status.NOT_CONFIGURED}
    assert report.exit_code == 0
    assert "CARBON_POSTGRES__HOST" in (report.results[0].hint or "")
    required = run_doctor(require=("s3",))
    assert required.exit_code == 1
    failed = {r["service"]: r["failed"] for r in required.to_dict()["results"]}
    assert failed == {name: name == "s3" for name in CONNECTORS}


def test_invalid_settings_are_misconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_S3__ADDRESSING_STYLE", "sideways")
    from carbon_sdk.settings.carbon import reload

    reload()
    (result,) = run_doctor("s3").results
    assert result.status is Status.MISCONFIGURED
    assert "s3.addressing_style" in result.detail
    assert "env CARBON_S3__ADDRESSING_STYLE" in result.detail


def test_unknown_service_is_rejected() -> None:
    with pytest.raises(
        ConfigurationError, match="unknown service 'trinoo' \\(did you mean `trino`"
    ):
        run_doctor("trinoo")


def test_json_document_is_stable(endpoints: dict[str, int]) -> None:
    point_at(endpoints["refuse"])
    document = json.loads(run_doctor(timeout=TIMEOUT).to_json())
    assert document["version"] == 1
    assert document["ok"] is False
    assert document["timeout_s"] == TIMEOUT
    assert set(document["results"][0]) == {
        "service",
        "status",
        "latency_ms",
        "detail",
        "hint",
        "endpoint",
        "failed",
    }


def test_html_repr_for_notebooks(endpoints: dict[str, int]) -> None:
    point_at(endpoints["refuse"])
    html = run_doctor(timeout=TIMEOUT)._repr_html_()
    assert "<table>" in html and "unreachable" in html
    assert "canary-doctor-pw" not in html
