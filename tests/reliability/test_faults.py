"""The fault matrix: each connector's everyday call, through its real client library, against a
server that is stopped (the port refuses), a listener that accepts and never answers, and a
peer that answers garbage. The listeners are fault-injection tools (tests/unit/listeners.py),
not imitations of any server.

Cells already tested elsewhere are not repeated here; those tests record their times into the
same table (``fault_log``): PostgreSQL and S3 stopped (tests/postgres, tests/s3) and hanging
(tests/unit/test_timeouts.py, also Trino). Results go to docs/reliability.md."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from unit.listeners import Endpoint, closed_port, every_connector_at

from carbon_sdk import datahub, kafka, mlflow, postgres, ray, s3, trino
from carbon_sdk.errors import CarbonError, ServiceError, Unreachable
from carbon_sdk.settings.carbon import configure

from .report import FaultLog

CONNECT_TIMEOUT = 1.0
REQUEST_TIMEOUT = 3.0  # what a client that ignores connect_timeout waits per attempt instead
STOPPED_BOUND = 1.0  # the "clear error within 1 s"
# connect_timeout plus slack for a loaded 2-core machine (as tests/unit/test_timeouts.py)
ANSWER_BOUND = CONNECT_TIMEOUT + 2.0
# A broken answer may be retried once the client's retry policy says so, after a jittered
# backoff (botocore's standard mode: up to 1 s, then 2 s) begun before the deadline passed.
GARBAGE_BOUND = ANSWER_BOUND + 1.0
BOUNDS = {"stopped": STOPPED_BOUND, "hang": ANSWER_BOUND, "garbage": GARBAGE_BOUND}

CALLS: dict[str, Callable[[], Any]] = {
    "postgres": lambda: postgres.query("select 1"),
    "s3": lambda: s3.ls("s3://scratch/"),
    "trino": lambda: trino.query("select 1", progress=False),
    "kafka": kafka.topics,
    "mlflow": lambda: mlflow.runs("x"),
    "datahub": lambda: datahub.search("*"),
    "ray": lambda: ray.jobs().list_jobs(),
}
COVERED = {  # tested (and recorded) elsewhere: not repeated
    ("postgres", "stopped"),
    ("s3", "stopped"),
    ("postgres", "hang"),
    ("s3", "hang"),
    ("trino", "hang"),
}
# Cells that miss their bound today, measured and reported (docs/reliability.md), as
# {(service, fault): reason}. Not strict: some sit close to their bound on a loaded machine;
# test_report checks the table's bold cells are exactly these. None since MLflow checks its
# first contact, DataHub and the Ray Jobs API bound theirs, and ray.init bounds Ray Client's
# reconnect wait (docs/reliability.md).
KNOWN_GAPS: dict[tuple[str, str], str] = {}
MATRIX = [
    pytest.param(
        service,
        fault,
        marks=[pytest.mark.xfail(strict=False, reason=KNOWN_GAPS[(service, fault)])]
        if (service, fault) in KNOWN_GAPS
        else [],
        id=f"{service}-{fault}",
    )
    for service in CALLS
    for fault in ("stopped", "hang", "garbage")
    if (service, fault) not in COVERED
]


@pytest.fixture
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port that behaves as the test's fault says."""
    fault = request.node.callspec.params["fault"]
    if fault == "stopped":
        yield closed_port()
        return
    endpoint = Endpoint(fault)
    yield endpoint.port
    endpoint.close()


def point_at(port: int) -> None:
    configure(
        **every_connector_at(
            port, "fault-pw-x1", connect_timeout=CONNECT_TIMEOUT, request_timeout=REQUEST_TIMEOUT
        )
    )


def warm_up(service: str) -> None:
    """Import the client library (seconds on a loaded machine) before timing the call."""
    point_at(closed_port())
    with pytest.raises(CarbonError):
        CALLS[service]()


@pytest.mark.parametrize(("service", "fault"), MATRIX)
def test_fault(service: str, fault: str, port: int, fault_log: FaultLog) -> None:
    warm_up(service)
    point_at(port)
    started = time.monotonic()
    with pytest.raises(ServiceError) as info:  # never a raw client exception, never a hang
        CALLS[service]()
    elapsed = time.monotonic() - started
    bound = BOUNDS[fault]
    fault_log(service, fault, info.value, elapsed, bound)
    assert info.value.service == service
    assert str(info.value).startswith(f"{service} at "), str(info.value)  # names the service
    assert "fault-pw-x1" not in str(info.value)
    if fault == "stopped":
        assert isinstance(info.value, Unreachable), str(info.value)
    assert elapsed < bound, f"{elapsed:.2f} s: {info.value}"
