"""Fixtures of the DataHub tests: the GMS contract double, and a DataHub Lite store per test.

HOME is a fresh directory per test: acryl-datahub writes ``~/.datahub`` (telemetry settings,
Lite's default store) and its CLI reads ``~/.datahubenv``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gms_double import GmsDouble

from carbon_sdk import datahub
from carbon_sdk.settings.carbon import reload

TOKEN = "dh-test-token-5f1c0a9e"


@pytest.fixture(autouse=True)
def datahub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A HOME of its own (with the ``~/.datahubenv`` Lite's CLI wants); telemetry off; lineage
    recording back to the settings afterwards."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".datahubenv").write_text("gms:\n  server: http://127.0.0.1:9\n  token: ''\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DATAHUB_TELEMETRY_ENABLED", "false")
    yield home
    datahub.flush(30)
    datahub.record_lineage(False)
    datahub._explicit = None


@pytest.fixture
def gms(monkeypatch: pytest.MonkeyPatch) -> Iterator[GmsDouble]:
    """The GMS double, and the SDK pointed at it with the right token."""
    double = GmsDouble(token=TOKEN)
    monkeypatch.setenv("CARBON_DATAHUB__GMS_URL", double.url)
    monkeypatch.setenv("CARBON_DATAHUB__TOKEN", TOKEN)
    monkeypatch.setenv("CARBON_DATAHUB__MAX_ATTEMPTS", "1")
    reload()
    yield double
    double.stop()
    assert not double.violations, double.violations


@pytest.fixture
def lite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The SDK on backend=lite with a store file of this test's own."""
    path = tmp_path / "lite" / "datahub.db"
    monkeypatch.setenv("CARBON_DATAHUB__BACKEND", "lite")
    monkeypatch.setenv("CARBON_DATAHUB__LITE_PATH", str(path))
    reload()
    return path
