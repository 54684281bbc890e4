"""Doctor against local TCP servers that refuse, hang, or answer garbage.

The connector checks run their real client libraries (psycopg, boto3) over the network; the
servers here are deliberately broken endpoints, not imitations of PostgreSQL or S3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from listeners import Endpoint, closed_port, every_connector_at

from carbon_sdk import doctor as run_doctor
from carbon_sdk import postgres
from carbon_sdk._registry import CONNECTORS
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.health import Status, run
from carbon_sdk.settings.carbon import configure

TIMEOUT = 2.0


@pytest.fixture
def endpoints() -> Iterator[dict[str, int]]:
    hang, garbage = Endpoint("hang"), Endpoint("garbage")
    yield {"refuse": closed_port(), "hang": hang.port, "garbage": garbage.port}
    hang.close()
    garbage.close()


def point_at(port: int, password: str = "canary-doctor-pw") -> None:
    configure(**every_connector_at(port, password))


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


# checks monkeypatched in this process: only a forked child or a thread sees the patch
ISOLATIONS = pytest.mark.parametrize("isolation", ["fork", "thread"])


@ISOLATIONS
def test_checks_run_concurrently(monkeypatch: pytest.MonkeyPatch, isolation: str) -> None:
    """Three checks that each take 1.5 s finish together in well under 3 x 1.5 s."""

    def slow(_settings: object) -> str:
        time.sleep(1.5)
        return "slow but fine"

    monkeypatch.setattr(postgres, "check", slow)
    configure(postgres={"host": "127.0.0.1", "user": "u"})
    started = time.monotonic()
    report = run(["postgres"] * 3, timeout=TIMEOUT, isolation=isolation)
    assert time.monotonic() - started < 2.5
    assert [r.status for r in report.results] == [Status.OK] * 3


@ISOLATIONS
def test_hanging_check_is_cut_off_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch, isolation: str
) -> None:
    # returns a str when it wakes, as checks do (its abandoned thread still finishes)
    monkeypatch.setattr(postgres, "check", lambda _s: time.sleep(30) or "woke up")
    configure(postgres={"host": "127.0.0.1", "user": "u"})
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    started = time.monotonic()
    report = run(["postgres"], timeout=1.0, isolation=isolation)
    assert time.monotonic() - started < 2.0
    (result,) = report.results
    assert result.status is Status.UNREACHABLE
    assert "no answer within 1 s" in result.detail
    if isolation == "fork":  # the hanging check's process was ended, not left behind
        after = {p.pid for p in psutil.Process().children(recursive=True)}
        assert not after - before


def test_a_bug_in_a_check_is_reported_as_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_settings: object) -> str:
        raise KeyError("oops")

    monkeypatch.setattr(postgres, "check", broken)
    configure(postgres={"host": "127.0.0.1", "user": "u"})
    (result,) = run(["postgres"], isolation="fork").results
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


def test_fork_server_children_get_resolved_settings_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A multi-threaded caller (a notebook kernel) gets its checks from the fork server, which
    started earlier: the checks must still see today's environment and configure() values."""
    port = closed_port()
    monkeypatch.setenv("CARBON_POSTGRES__PORT", str(port))
    configure(postgres={"host": "127.0.0.1", "user": "u"}, s3={"endpoint_url": "http://h:1"})
    report = run(["postgres"], timeout=TIMEOUT, isolation="forkserver")
    (result,) = report.results
    assert result.status is Status.UNREACHABLE, result
    assert result.endpoint == f"127.0.0.1:{port}/u"


_COLD_THREADS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from listeners import closed_port, every_connector_at
from carbon_sdk.health import run
from carbon_sdk.settings.carbon import configure

configure(**every_connector_at(closed_port(), "pw"))
report = run(timeout=30, isolation="thread")
print(json.dumps({r.service: [r.status.value, r.detail] for r in report.results}))
"""


def test_checks_in_threads_import_their_clients_cold() -> None:
    """Seven checks importing their client libraries at once, for the first time in the
    process: each must get whole modules (seen: "'requests' is not installed" for four of
    them, from a partially initialized module)."""
    out = subprocess.run(
        [sys.executable, "-c", _COLD_THREADS, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(results) == set(CONNECTORS)
    assert {status for status, _ in results.values()} == {Status.UNREACHABLE.value}, results
