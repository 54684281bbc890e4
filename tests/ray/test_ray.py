"""Ray against the stack's real head: Ray Client tasks, carbon_sdk on the workers, job
submission, the version guard, unreachable clusters, and secrets kept out of the runtime_env."""

from __future__ import annotations

import io
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray as ray_lib
from reliability.report import FaultLog

from carbon_sdk import ray
from carbon_sdk._registry import CONNECTORS
from carbon_sdk.dev.pytest_plugin import StackEnv, StartServices
from carbon_sdk.errors import Unreachable
from carbon_sdk.health import Status, run_check

pytestmark = pytest.mark.stack

CANARY = "canary-Secret-7f3a9c"  # a secret configured locally: must never reach the cluster


@pytest.fixture
def ray_env(stack_env: StackEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The stack's Ray settings plus a Trino section and a secret file holding :data:`CANARY`
    (secret files are what the platform mounts on the notebook and the workers alike)."""
    env = stack_env("ray")
    secrets = Path(str(tmp_path / "carbon-config" / "secrets"))
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "trino__password").write_text(CANARY + "\n")
    monkeypatch.setenv("CARBON_TRINO__HOST", "trino.example.internal")
    monkeypatch.setenv("CARBON_TRINO__CATALOG", "iceberg")
    monkeypatch.setenv("CARBON_TRINO__CLIENT_TAGS", "a,b")
    from carbon_sdk.settings.carbon import reload

    reload()
    return env


@pytest.fixture
def connected(ray_env: dict[str, str]) -> Iterator[object]:
    context = ray.init()
    yield context
    ray_lib.shutdown()


def test_remote_tasks_run_through_ray_client(connected: object) -> None:
    assert ray_lib.util.client.ray.is_connected()

    @ray_lib.remote
    def square(x: int) -> int:
        return x * x

    assert sum(ray_lib.get([square.remote(i) for i in range(100)])) == sum(
        i * i for i in range(100)
    )


def test_a_task_on_the_cluster_uses_carbon_sdk_settings(connected: object) -> None:
    @ray_lib.remote
    def trino_settings_on_worker() -> dict[str, object]:
        from carbon_sdk.trino import TrinoSettings

        settings = TrinoSettings.load()
        return {
            "host": settings.host,
            "catalog": settings.catalog,
            "tags": settings.client_tags,
            "password": settings.secret("password"),  # read from the secret file, by reference
            "origin": str(settings.origin("password")),
        }

    seen = ray_lib.get(trino_settings_on_worker.remote())
    assert seen["host"] == "trino.example.internal"
    assert seen["catalog"] == "iceberg"
    assert seen["tags"] == ["a", "b"]
    assert seen["password"] == CANARY
    assert str(seen["origin"]).startswith("secret ")


def test_send_settings_false_leaves_the_tasks_environment_alone(ray_env: dict[str, str]) -> None:
    @ray_lib.remote
    def seen_on_worker() -> tuple[str | None, str | None]:
        import os

        return os.environ.get("CARBON_TRINO__HOST"), os.environ.get("MINE")

    ray.init(send_settings=False, runtime_env={"env_vars": {"MINE": "1"}})
    try:
        assert ray_lib.get(seen_on_worker.remote()) == (None, "1")
    finally:
        ray_lib.shutdown()


def test_the_runtime_env_holds_no_secret_value(ray_env: dict[str, str]) -> None:
    env = ray.runtime_env({"env_vars": {"MINE": "1"}})
    assert env["env_vars"]["MINE"] == "1"
    assert env["env_vars"]["CARBON_TRINO__HOST"] == "trino.example.internal"
    assert "CARBON_TRINO__PASSWORD" not in env["env_vars"]
    assert "CARBON_SECRETS_DIR" in env["env_vars"]
    assert CANARY not in repr(env)
    assert not any(k.startswith("CARBON_RAY__") for k in env["env_vars"])


def test_submit_runs_a_job_to_succeeded_with_its_logs(
    ray_env: dict[str, str], tmp_path: Path
) -> None:
    work = tmp_path / "job"
    work.mkdir()
    (work / "job.py").write_text(
        "import os, ray\n"
        "from carbon_sdk.trino import TrinoSettings\n"
        "ray.init()\n"
        "print('sum', sum(ray.get([ray.remote(lambda x: x + 1).remote(i) for i in range(10)])))\n"
        "print('host', TrinoSettings.load().host)\n"
        "print('env', sorted(os.environ.items()))\n"
    )
    out = io.StringIO()
    run = ray.submit("python job.py", working_dir=work, output=out, timeout=180)
    assert run.ok, (run.status, run.message, run.logs)
    assert "sum 55" in run.logs and "host trino.example.internal" in run.logs
    assert "sum 55" in out.getvalue()
    info = ray.jobs().get_job_info(run.submission_id)
    assert CANARY not in run.logs
    assert CANARY not in repr(info.runtime_env)
    assert CANARY not in ray.jobs().get_job_logs(run.submission_id)


def test_a_failing_job_reports_failed(ray_env: dict[str, str]) -> None:
    run = ray.submit("python -c 'import sys; print(\"boom\"); sys.exit(3)'", output=io.StringIO())
    assert not run.ok
    assert str(run.status.value if hasattr(run.status, "value") else run.status) == "FAILED"
    assert "boom" in run.logs


def test_version_mismatch_names_both_versions_and_the_fix(
    ray_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ray_lib.__version__
    monkeypatch.setattr(ray_lib, "__version__", "2.59.0")
    with pytest.raises(ray.VersionMismatch) as caught:
        ray.init()
    message = str(caught.value)
    assert f"Ray {real}" in message and "Ray 2.59.0" in message
    assert f"ray[client,default]=={real}" in message
    assert "Jobs API" in message
    assert not ray_lib.is_initialized()


def test_python_mismatch_is_named_too(ray_env: dict[str, str]) -> None:
    settings = ray.RaySettings.load()
    cluster = ray.cluster_versions(settings)
    assert cluster.ray == ray_lib.__version__ and cluster.python
    with pytest.raises(ray.VersionMismatch, match=r"use Python 3\.\d+ here"):
        ray.check_versions(settings, cluster, ray.Versions(cluster.ray, "3.9.18"))


def test_doctor_reports_versions_and_resources(ray_env: dict[str, str]) -> None:
    result = run_check(CONNECTORS["ray"], timeout=10)
    assert result.status is Status.OK, result
    assert f"Ray {ray_lib.__version__}" in str(result.detail)
    assert "2 CPU" in str(result.detail) and "1 node" in str(result.detail)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_cluster_is_unreachable_quickly() -> None:
    port = _free_port()
    started = time.monotonic()
    with pytest.raises(Unreachable, match=r"ray\.host"):
        ray.init(settings={"host": "127.0.0.1", "client_port": port, "dashboard_port": port})
    assert time.monotonic() - started < 5
    with pytest.raises(Unreachable):
        ray.init(
            settings={"host": "127.0.0.1", "client_port": port, "dashboard_port": port},
            check_version=False,
        )


def test_a_silent_cluster_times_out_within_the_configured_timeout() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        settings = {
            "host": "127.0.0.1",
            "client_port": port,
            "dashboard_port": port,
            "connect_timeout": 1,
            "request_timeout": 1.5,
        }
        started = time.monotonic()
        with pytest.raises(Unreachable, match="timed out"):
            ray.init(settings=settings)
        with pytest.raises(Unreachable):
            ray.jobs(**settings)
        assert time.monotonic() - started < 8


def test_a_token_never_shows_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    port = _free_port()
    monkeypatch.setenv("CARBON_RAY__TOKEN", CANARY)
    with pytest.raises(Unreachable) as caught:
        ray.jobs(host="127.0.0.1", dashboard_port=port)
    assert CANARY not in str(caught.value)
    assert CANARY not in repr(ray.RaySettings.load(host="h"))


KILL_BOUNDS = {"connect_timeout": 2.0, "request_timeout": 10.0}  # as the other mid-op cells


@pytest.mark.slow
def test_head_killed_mid_get(
    ray_env: dict[str, str],
    carbon_services: StartServices,
    monkeypatch: pytest.MonkeyPatch,
    fault_log: FaultLog,
) -> None:
    """The session's head SIGKILLed (its whole process group) while ``ray.get`` waits for
    running tasks: the error and its time are recorded; ``dev up`` restarts only the head
    (always, in ``finally``: the other Ray tests share it) and a new ``ray.init()`` works. The
    bound is connect_timeout + request_timeout; ``ray.init`` sets Ray Client's reconnect grace
    period (30 s by default) to connect_timeout."""
    for key, value in KILL_BOUNDS.items():
        monkeypatch.setenv(f"CARBON_RAY__{key.upper()}", str(value))
    from carbon_sdk.settings.carbon import reload

    reload()
    stack = carbon_services("ray").stack
    (record,) = [r for r in stack.records() if r.name == "ray"]
    assert record.handle is not None
    killed: list[float] = []

    def kill() -> None:
        os.killpg(record.handle.pgid, signal.SIGKILL)  # the group the stack started, by pgid
        killed.append(time.monotonic())

    try:
        ray.init(send_settings=False)

        @ray_lib.remote
        def slow(x: int) -> int:
            time.sleep(120)
            return x

        refs = [slow.remote(i) for i in range(2)]
        timer = threading.Timer(2.0, kill)  # the tasks are running by then
        timer.start()
        with pytest.raises(ConnectionError) as info:
            ray_lib.get(refs)
        elapsed = time.monotonic() - killed[0]
        timer.join()
    finally:
        ray_lib.shutdown()
        carbon_services("ray")  # `dev up`: restarts the dead head, leaves the rest alone
    bound = KILL_BOUNDS["connect_timeout"] + KILL_BOUNDS["request_timeout"]
    fault_log("ray", "killed mid-operation", info.value, elapsed, bound)
    print(f"ray head killed mid-get: {type(info.value).__name__} after {elapsed:.1f} s")
    (again,) = [r for r in stack.records() if r.name == "ray"]
    assert again.handle is not None and again.handle.pid != record.handle.pid
    ray.init(send_settings=False)
    try:
        assert ray_lib.get(ray_lib.remote(lambda: 7).remote()) == 7
    finally:
        ray_lib.shutdown()
    assert elapsed < bound, f"{elapsed:.1f} s: {type(info.value).__name__}: {info.value}"
