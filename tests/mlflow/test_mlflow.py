"""carbon_sdk.mlflow against the stack's real MLflow servers: ``mlflow`` (PostgreSQL backend,
artifacts proxied to the stack's S3) and ``mlflow_auth`` (MLflow's basic-auth app)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import mlflow
import numpy as np
import pytest
from reliability.report import FaultLog
from unit.listeners import Proxy

from carbon_sdk import AuthFailed, NotFound, Unreachable
from carbon_sdk import mlflow as carbon_mlflow
from carbon_sdk.dev.pytest_plugin import StackEnv, StartServices
from carbon_sdk.dev.s3 import admin_client
from carbon_sdk.health import Status, run
from carbon_sdk.settings.carbon import reload

pytestmark = pytest.mark.stack


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def hub_user(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("JPY_SESSION_NAME", "work/train.ipynb")
    return "alice"


def test_params_metrics_and_artifacts_land_in_the_stack(
    stack_env: StackEnv, carbon_services: StartServices, hub_user: str
) -> None:
    stack_env("mlflow")
    name = unique("track")
    client = carbon_mlflow.setup(name)
    assert carbon_mlflow.setup(name) is client  # idempotent: same client, same experiment
    experiment = client.get_experiment_by_name(f"/users/{hub_user}/{name}")
    assert experiment is not None
    with mlflow.start_run() as active:  # the plain API, unchanged user code
        mlflow.log_param("alpha", 0.5)
        mlflow.log_metric("loss", 0.25, step=1)
        mlflow.log_text("hello", "notes/hello.txt")
        logged = carbon_mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=2)
        logged += carbon_mlflow.log_metrics([("curve", float(i), i) for i in range(1500)])
    assert logged == 1502
    run_id = active.info.run_id
    assert active.info.experiment_id == experiment.experiment_id
    data = client.get_run(run_id).data
    assert data.params == {"alpha": "0.5"}
    assert data.metrics["loss"] == 0.25 and data.metrics["acc"] == 0.9
    assert len(client.get_metric_history(run_id, "curve")) == 1500
    assert data.tags["mlflow.user"] == hub_user
    assert data.tags["carbon.jupyterhub_user"] == hub_user
    assert data.tags["carbon.notebook"] == "work/train.ipynb"
    # the artifact is in the stack's S3 bucket, under the server's artifacts destination
    s3 = admin_client(carbon_services("s3").settings("s3"))
    key = f"{experiment.experiment_id}/{run_id}/artifacts/notes/hello.txt"
    assert s3.get_object(Bucket="mlflow", Key=key)["Body"].read() == b"hello"
    frame = carbon_mlflow.runs(name)
    assert list(frame["run_id"]) == [run_id]
    assert frame.loc[0, "metrics.acc"] == 0.9
    with pytest.raises(NotFound, match="no experiment named"):
        carbon_mlflow.runs(unique("missing"))


def test_sklearn_model_by_run_and_registry_uri(stack_env: StackEnv) -> None:
    from sklearn.linear_model import LogisticRegression

    stack_env("mlflow")
    carbon_mlflow.setup(unique("model"))
    features = np.random.default_rng(0).normal(size=(200, 3))
    labels = (features[:, 0] + features[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(features, labels)
    registered = unique("clf")
    with mlflow.start_run() as active:
        mlflow.sklearn.log_model(
            model,
            name="model",
            pip_requirements=["scikit-learn"],  # no 5 s requirements inference
            registered_model_name=registered,
        )
    expected = model.predict(features)
    by_run = carbon_mlflow.load_model(f"runs:/{active.info.run_id}/model")
    assert (np.asarray(by_run.predict(features)) == expected).all()
    by_name = carbon_mlflow.load_model(f"models:/{registered}/1", flavor="sklearn")
    assert (by_name.predict(features) == expected).all()
    with pytest.raises(NotFound):
        carbon_mlflow.load_model(f"models:/{registered}/99")


@pytest.fixture
def proxy(carbon_services: StartServices) -> Iterator[Proxy]:
    uri = str(carbon_services("mlflow").settings("mlflow")["tracking_uri"])
    forwarder = Proxy(int(uri.rsplit(":", 1)[1]))
    yield forwarder
    forwarder.stop()


def test_server_down_mid_run(
    stack_env: StackEnv, proxy: Proxy, monkeypatch: pytest.MonkeyPatch, fault_log: FaultLog
) -> None:
    stack_env("mlflow")
    monkeypatch.setenv("CARBON_MLFLOW__TRACKING_URI", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("CARBON_MLFLOW__MAX_ATTEMPTS", "1")
    monkeypatch.setenv("CARBON_MLFLOW__REQUEST_TIMEOUT", "10")
    reload()
    client = carbon_mlflow.setup(unique("down"))
    with mlflow.start_run() as active:
        carbon_mlflow.log_metrics({"before": 1.0})
        proxy.stop()  # the server goes away mid-run
        started = time.monotonic()
        with pytest.raises(Unreachable, match=r"mlflow\.tracking_uri") as info:
            carbon_mlflow.log_metrics({"during": 2.0})
        elapsed = time.monotonic() - started
        fault_log("mlflow", "killed mid-operation", info.value, elapsed, 10)
        assert elapsed < 10  # no long retry loop: max_attempts=1
        assert f"127.0.0.1:{proxy.port}" in str(info.value)
        with pytest.raises(mlflow.exceptions.MlflowException):
            mlflow.log_metric("during", 2.0)  # the plain API fails too (MLflow's own error)
        (result,) = run(["mlflow"]).results
        assert result.status is Status.UNREACHABLE
        proxy.start()  # back on the same port: the run goes on
        carbon_mlflow.log_metrics({"after": 3.0})
    metrics = client.get_run(active.info.run_id).data.metrics
    assert metrics == {"before": 1.0, "after": 3.0}
    assert client.get_run(active.info.run_id).info.status == "FINISHED"


def test_basic_auth_server_accepts_the_password_and_rejects_a_wrong_one(
    carbon_services: StartServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = carbon_services("mlflow_auth").settings("mlflow_auth")
    password = str(server["password"])
    # MLflow's standard variables are honoured as aliases
    monkeypatch.setenv("MLFLOW_TRACKING_URI", str(server["tracking_uri"]))  # https
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(server["ca_bundle"]))
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", str(server["username"]))
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    reload()
    client = carbon_mlflow.setup(unique("auth"))
    with mlflow.start_run() as active:
        mlflow.log_metric("m", 1.0)
        mlflow.log_text("secret-free", "a.txt")
    assert client.get_run(active.info.run_id).data.metrics == {"m": 1.0}
    (result,) = run(["mlflow"], deep=True).results
    assert result.status is Status.OK, result.detail
    assert "basic auth" in result.detail and "artifact store writable" in result.detail

    wrong = "wrong-" + password[:6]
    monkeypatch.setenv("CARBON_MLFLOW__PASSWORD", wrong)
    reload()
    with pytest.raises(AuthFailed, match="401") as info:
        carbon_mlflow.setup(unique("auth"))
    message = str(info.value)
    assert "mlflow.password" in message
    assert wrong not in message and password not in message
    (result,) = run(["mlflow"]).results
    assert result.status is Status.AUTH_FAILED
    assert wrong not in f"{result.detail} {result.hint}"
    # without credentials: also an auth failure, not "unreachable"
    for name in ("CARBON_MLFLOW__PASSWORD", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME"):
        monkeypatch.delenv(name)
    reload()
    (result,) = run(["mlflow"]).results
    assert result.status is Status.AUTH_FAILED
