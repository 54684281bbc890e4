"""carbon_sdk.mlflow without a server: settings, the environment setup() applies, naming,
errors, and the doctor on a closed port."""

from __future__ import annotations

import os
import socket

import pytest

from carbon_sdk import ConfigurationError, Unreachable
from carbon_sdk import mlflow as carbon_mlflow
from carbon_sdk.health import Status, run
from carbon_sdk.mlflow import MlflowSettings, environment, experiment_name
from carbon_sdk.settings.carbon import configure


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_standard_mlflow_variables_are_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000/")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret-pass")
    settings = MlflowSettings.load()
    assert settings.endpoint == "http://mlflow.example:5000"
    assert settings.auth_mode() == "basic"
    assert str(settings.origin("password")) == "env MLFLOW_TRACKING_PASSWORD"
    assert "s3cret-pass" not in repr(settings) + settings.debug_string()


def test_environment_sets_auth_tls_timeouts_and_removes_other_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "stale-token")
    configure(
        mlflow={
            "tracking_uri": "https://mlflow.example",
            "auth": "basic",
            "username": "bob",
            "password": "pw-123456789",
            "request_timeout": 12.5,
            "max_attempts": 2,
            "ca_bundle": "/etc/ca.pem",
        }
    )
    env = environment(MlflowSettings.load())
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example"
    assert env["MLFLOW_TRACKING_USERNAME"] == "bob"
    assert env["MLFLOW_TRACKING_PASSWORD"] == "pw-123456789"
    assert env["MLFLOW_TRACKING_TOKEN"] is None  # the configured mode wins
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "13"
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"  # writes are never retried blindly
    assert env["MLFLOW_TRACKING_SERVER_CERT_PATH"] == "/etc/ca.pem"
    assert env["MLFLOW_TRACKING_INSECURE_TLS"] is None
    assert "MLFLOW_S3_ENDPOINT_URL" not in env  # proxied artifacts: no S3 credentials


def test_direct_artifacts_set_the_s3_variables() -> None:
    configure(
        mlflow={"tracking_uri": "http://m:5000", "artifacts_proxied": False, "verify": False},
        s3={
            "endpoint_url": "http://s3:9000",
            "access_key_id": "AK",
            "secret_access_key": "SK-secret",
        },
    )
    env = environment(MlflowSettings.load())
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:9000"
    assert env["AWS_ACCESS_KEY_ID"] == "AK"
    assert env["AWS_SECRET_ACCESS_KEY"] == "SK-secret"
    assert env["MLFLOW_TRACKING_INSECURE_TLS"] == "true"


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [("file:///tmp/mlruns", "not an http"), ("http://u:p4ss@h:5000", "contains credentials")],
)
def test_tracking_uri_must_be_a_server_without_credentials(uri: str, fragment: str) -> None:
    configure(mlflow={"tracking_uri": uri})
    with pytest.raises(ConfigurationError, match=fragment) as info:
        carbon_mlflow.client()
    assert "p4ss" not in str(info.value)


def test_missing_tracking_uri_names_the_variables() -> None:
    with pytest.raises(ConfigurationError, match="CARBON_MLFLOW__TRACKING_URI") as info:
        carbon_mlflow.setup()
    assert "MLFLOW_TRACKING_URI" in str(info.value)


def test_experiment_names_follow_the_per_user_convention(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(mlflow={"tracking_uri": "http://m:5000"})
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    assert experiment_name("churn") == "/users/alice/churn"
    assert experiment_name("/shared/churn") == "/shared/churn"
    assert experiment_name() == "/users/alice/default"
    monkeypatch.setenv("JPY_SESSION_NAME", "work/train-model.ipynb")
    assert experiment_name() == "/users/alice/train-model"
    assert experiment_name(experiment_prefix="/") == "train-model"
    with pytest.raises(ConfigurationError, match="placeholder"):
        experiment_name("x", experiment_prefix="/teams/{team}")


def test_run_context_tags_hub_user_and_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JPY_SESSION_NAME", "work/train.ipynb")
    context = carbon_mlflow.RunContext()
    assert not context.in_context()  # only after setup()
    tags = context.tags()
    assert tags["mlflow.user"] == "alice"
    assert tags["carbon.jupyterhub_user"] == "alice"
    assert tags["carbon.notebook"] == tags["mlflow.source.name"] == "work/train.ipynb"


def test_unreachable_server_is_reported_with_the_setting_to_fix() -> None:
    configure(mlflow={"tracking_uri": f"http://127.0.0.1:{closed_port()}", "max_attempts": 1})
    with pytest.raises(Unreachable, match=r"mlflow\.tracking_uri") as info:
        carbon_mlflow.setup("x")
    assert "Connection refused" in str(info.value)
    (result,) = run(["mlflow"], deep=True).results
    assert result.status is Status.UNREACHABLE
    assert "CARBON_MLFLOW__TRACKING_URI" in result.detail


def test_setup_does_not_leak_the_password_into_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    configure(
        mlflow={
            "tracking_uri": f"http://127.0.0.1:{port}",
            "username": "u",
            "password": "very-secret-pw",
            "max_attempts": 1,
        }
    )
    with pytest.raises(Unreachable) as info:
        carbon_mlflow.setup("x")
    assert "very-secret-pw" not in str(info.value)
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "very-secret-pw"  # for the plain API
    (result,) = run(["mlflow"]).results
    assert "very-secret-pw" not in f"{result.detail} {result.hint}"
