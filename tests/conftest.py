"""Every test starts from an empty configuration: no CARBON_*, libpq or AWS variables, and
config/secrets locations inside the test's tmp_path. Tests can add a line to the run's terminal
summary through the ``report`` fixture (the canary sweep's and the docs examples' counts)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

# Ray Client tests leave gRPC threads in this process; gRPC's fork handlers then crash the
# child of a later fork() that is about to exec (initdb died with SIGBUS/SIGSEGV, after
# "Other threads are currently calling into gRPC, skipping fork() handlers"). Set before
# grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

# A script that starts the suite in the background without job control (`make test &`) hands
# it SIGINT ignored, and Python then installs no KeyboardInterrupt handler: the interrupt tests
# (a notebook's interrupt button) saw their SIGINT vanish. Every interactive Python and every
# notebook kernel has the handler.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

import pytest
from reliability.report import FaultLog, Results, TlsLog, fault_logger, tls_logger, write_doc

from carbon_sdk.settings.carbon import reload

REPORT = pytest.StashKey[dict[str, str]]()

CLEARED_PREFIXES = (
    "CARBON_",
    "PG",
    "AWS_",
    "MLFLOW_",
    "TRINO_",
    "RAY_",
    "KAFKA_",
    "DATAHUB_",
    "JUPYTERHUB_",
)


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every config location into ``tmp_path`` and clear the variables the SDK reads."""
    for name in list(os.environ):
        if name.startswith(CLEARED_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path / "carbon-config"
    home.mkdir()
    monkeypatch.setenv("CARBON_CONFIG", str(home / "system.yaml"))
    monkeypatch.setenv("CARBON_USER_CONFIG", str(home / "user.yaml"))
    monkeypatch.setenv("CARBON_SECRETS_DIR", str(home / "secrets"))
    reload()
    yield home
    monkeypatch.undo()
    reload()


@pytest.fixture
def report(pytestconfig: pytest.Config) -> dict[str, str]:
    """Lines for the terminal summary, by topic; the last value set for a topic is shown."""
    return pytestconfig.stash.setdefault(REPORT, {})


@pytest.fixture
def fault_log(pytestconfig: pytest.Config) -> FaultLog:
    """Records a cell of the fault table in docs/reliability.md (see tests/reliability)."""
    return fault_logger(pytestconfig)


@pytest.fixture
def tls_log(pytestconfig: pytest.Config) -> TlsLog:
    """Records a row of the TLS table in docs/reliability.md (tests/reliability/test_tls.py)."""
    return tls_logger(pytestconfig)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """With ``CARBON_RELIABILITY_REPORT=<path>`` (``make reliability``), write what this run
    measured into the generated part of that file."""
    if target := os.environ.get("CARBON_RELIABILITY_REPORT"):
        canary = session.config.stash.get(REPORT, {}).get("canary sweep")
        write_doc(Path(target), Results.of(session.config), canary)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    for line in config.stash.get(REPORT, {}).values():
        terminalreporter.write_line(line)
