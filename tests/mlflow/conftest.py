"""MLflow tests: MLflow's own telemetry off, and the SDK's and MLflow's process state reset."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import carbon_sdk.mlflow as carbon_mlflow


@pytest.fixture(autouse=True)
def mlflow_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts unconfigured; a run left open by a failing test is ended."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setattr(carbon_mlflow, "_STATE", carbon_mlflow._State())
    yield
    import mlflow

    while mlflow.active_run() is not None:
        try:
            mlflow.end_run()
        except Exception:
            break
    mlflow.set_tracking_uri(None)
