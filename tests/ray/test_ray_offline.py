"""carbon_sdk.ray without a cluster: addresses, the runtime_env contents, the version rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbon_sdk import configure, ray
from carbon_sdk.errors import Unreachable
from carbon_sdk.settings.carbon import reload

CANARY = "canary-Secret-0b1d"


def test_addresses_from_host_and_ports() -> None:
    settings = ray.RaySettings.load(host="head.ray.svc")
    assert settings.endpoint == "ray://head.ray.svc:10001"
    assert settings.dashboard == "http://head.ray.svc:8265"
    other = ray.RaySettings.load(host="::1", client_port=1, dashboard_url="https://r.example/x/")
    assert other.client_address == "ray://[::1]:1"
    assert other.dashboard == "https://r.example/x"


def test_token_goes_to_the_header_and_nowhere_else() -> None:
    settings = ray.RaySettings.load(host="h", token=CANARY)
    assert settings.headers() == {"Authorization": f"Bearer {CANARY}"}
    assert CANARY not in repr(settings) and CANARY not in settings.debug_string()
    assert ray.RaySettings.load(host="h").headers() == {}


def test_runtime_env_carries_non_secret_settings_only(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = isolated_config / "secrets"
    secrets.mkdir()
    (secrets / "postgres__password").write_text(CANARY)
    monkeypatch.setenv("CARBON_S3__SECRET_ACCESS_KEY", CANARY)  # an env secret: not sent either
    monkeypatch.setenv("CARBON_S3__ENDPOINT_URL", "http://s3.local:9000")
    monkeypatch.setenv("CARBON_RAY__HOST", "head")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    reload()
    configure(
        postgres={"host": "pg.local", "user": "alice"},
        trino={"host": "t", "client_tags": ["x", "y"], "verify": False},
    )
    env = ray.runtime_env({"env_vars": {"CARBON_TRINO__HOST": "mine"}, "pip": ["x"]})
    variables = env["env_vars"]
    assert env["pip"] == ["x"]
    assert variables["CARBON_TRINO__HOST"] == "mine"  # the caller's own variables win
    assert variables["CARBON_TRINO__CLIENT_TAGS"] == '["x", "y"]'
    assert variables["CARBON_TRINO__VERIFY"] == "false"
    assert variables["CARBON_POSTGRES__HOST"] == "pg.local"
    assert variables["CARBON_S3__ENDPOINT_URL"] == "http://s3.local:9000"
    assert variables["CARBON_SECRETS_DIR"] == str(secrets)
    assert variables["JUPYTERHUB_USER"] == "alice"
    assert "CARBON_POSTGRES__PASSWORD" not in variables
    assert "CARBON_S3__SECRET_ACCESS_KEY" not in variables
    assert not any(name.startswith("CARBON_RAY__") for name in variables)
    assert "CARBON_TRINO__PORT" not in variables  # defaults stay defaults on the worker
    assert CANARY not in repr(env)


def test_a_broken_section_is_left_out_not_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_TRINO__PORT", "not-a-port")
    monkeypatch.setenv("CARBON_POSTGRES__HOST", "pg")
    reload()
    variables = ray.settings_env()
    assert variables["CARBON_POSTGRES__HOST"] == "pg"
    assert "CARBON_TRINO__PORT" not in variables


@pytest.mark.parametrize(
    ("cluster", "local", "fix"),
    [
        (ray.Versions("2.60.0", "3.11.7"), ray.Versions("2.59.0", "3.11.9"), "==2.60.0"),
        (ray.Versions("2.60.0", "3.12.1"), ray.Versions("2.60.0", "3.11.9"), "Python 3.12"),
    ],
)
def test_version_rule_names_both_sides(
    cluster: ray.Versions, local: ray.Versions, fix: str
) -> None:
    settings = ray.RaySettings.load(host="head")
    with pytest.raises(ray.VersionMismatch) as caught:
        ray.check_versions(settings, cluster, local)
    message = str(caught.value)
    assert str(cluster) in message and str(local) in message and fix in message
    assert caught.value.cluster == cluster and caught.value.local == local


def test_same_ray_and_python_minor_is_compatible() -> None:
    settings = ray.RaySettings.load(host="head")
    ray.check_versions(settings, ray.Versions("2.60.0", "3.11.7"), ray.Versions("2.60.0", "3.11.2"))
    ray.check_versions(settings, ray.Versions("2.60.0", None), ray.Versions("2.60.0", "3.13.0"))


def test_local_versions_are_read_without_importing_ray() -> None:
    """In a fresh interpreter: other tests of this session import ray."""
    import subprocess
    import sys

    probe = (
        "import sys; from carbon_sdk import ray; v = ray.local_versions(); "
        "print(bool(v.ray), 'ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False"]


def test_a_failed_server_session_names_the_server_side_cause() -> None:
    """Ray Client's "Initialization failure from server:" carries the server's traceback: the
    error shows its last line (the cause), not only the introduction."""
    settings = ray.RaySettings.load(host="head", token=CANARY)
    server_traceback = (
        "Initialization failure from server:\nTraceback (most recent call last):\n"
        '  File "proxier.py", line 770, in Datapath\n    raise RuntimeError(\n'
        f"RuntimeError: Starting Ray client server failed (token {CANARY}). See "
        "ray_client_server_23001.err for detailed logs.\n"
    )
    error = ray.classify(ConnectionAbortedError(server_traceback), settings)
    assert isinstance(error, Unreachable)
    message = str(error)
    assert "Initialization failure from server: RuntimeError: Starting Ray client server" in message
    assert "ray_client_server_23001.err" in message
    assert CANARY not in message and "Traceback" not in message
