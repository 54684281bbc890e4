"""Two real stacks side by side through the `carbon-sdk dev` command, as a new user runs them:
each keeps its own profile, `down` removes only its own, and a killed server is shown and
restarted alone."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from carbon_sdk import postgres
from carbon_sdk.dev import Stack, State
from carbon_sdk.dev.cli import app
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.settings.carbon import reload

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def profiles(isolated_config: Path) -> dict[str, dict[str, dict[str, object]]]:
    path = isolated_config / "user.yaml"
    data = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    return data.get("profiles") or {}


def port_with_profile(monkeypatch: pytest.MonkeyPatch, profile: str) -> int:
    """The PostgreSQL port the SDK reaches with ``CARBON_PROFILE=<profile>``, asked of the
    server itself."""
    monkeypatch.setenv("CARBON_PROFILE", profile)
    reload()
    frame = postgres.query("select inet_server_port() as port")
    return int(frame["port"].iloc[0])


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    """The standard home (under a temporary XDG_DATA_HOME) and a second CARBON_DEV_HOME; both
    stacks are stopped and purged afterwards."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    standard, second = tmp_path / "data" / "carbon-sdk" / "dev", tmp_path / "second"
    yield standard, second
    for home in (standard, second):
        Stack(home, profile=None).down(purge=True)


def test_second_stack_never_touches_the_first_ones_profile(
    homes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, isolated_config: Path
) -> None:
    standard, second = homes
    run("up", "postgres")  # the standard stack: profile `dev`
    assert run("profile").strip() == "dev"
    first_port = Stack(standard).settings()["postgres"]["port"]

    monkeypatch.setenv("CARBON_DEV_HOME", str(second))
    up = run("up", "postgres")
    name = run("profile").strip()
    assert name.startswith("dev-second-") and f"CARBON_PROFILE={name}" in up
    second_port = Stack(second).settings()["postgres"]["port"]
    assert second_port != first_port
    assert profiles(isolated_config)["dev"]["postgres"]["port"] == first_port
    assert profiles(isolated_config)[name]["postgres"]["port"] == second_port
    assert port_with_profile(monkeypatch, name) == second_port

    run("down")  # the second stack: its profile goes, `dev` stays and still works
    assert set(profiles(isolated_config)) == {"dev"}
    assert port_with_profile(monkeypatch, "dev") == first_port
    monkeypatch.setenv("CARBON_PROFILE", name)
    with pytest.raises(ConfigurationError, match=r"in none of.*`carbon-sdk dev up`"):
        reload()

    monkeypatch.delenv("CARBON_DEV_HOME")
    run("down")
    assert profiles(isolated_config) == {}  # nothing left pointing at dead ports


def test_a_killed_server_is_shown_and_restarted_alone(
    homes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, isolated_config: Path
) -> None:
    _, home = homes
    monkeypatch.setenv("CARBON_DEV_HOME", str(home))
    stack = Stack(home)
    run("up", "postgres", "s3")
    before = {s.name: s.pid for s in stack.status()}
    os.kill(int(before["s3"] or 0), signal.SIGKILL)  # the server, not its process group
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and stack.status()[1].state is not State.FAILED:
        time.sleep(0.05)

    status = CliRunner().invoke(app, ["status"])
    assert status.exit_code == 1, status.output  # a failed service fails `status`
    states = {s.name: s.state for s in stack.status()}
    assert states == {"postgres": State.RUNNING, "s3": State.FAILED}
    assert "failed" in status.output and "running" in status.output

    up = run("up", "postgres", "s3")
    assert "postgres: already running" in up and "s3: ready in" in up
    after = {s.name: s.pid for s in stack.status()}
    assert after["postgres"] == before["postgres"]  # untouched
    assert after["s3"] != before["s3"]
    assert {s.state for s in stack.status()} == {State.RUNNING}
    profile = profiles(isolated_config)[str(stack.profile)]
    assert profile["s3"] == stack.settings()["s3"]  # the restarted server, same port kept
