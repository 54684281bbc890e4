"""The supervisor itself, with tiny real servers (``python -m http.server``) as services."""

from __future__ import annotations

import io
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from carbon_sdk.dev import (
    DevStackError,
    Service,
    ServiceContext,
    ServiceStartError,
    Stack,
    State,
    process,
)
from carbon_sdk.dev import ports as port_alloc
from carbon_sdk.dev.progress import PlainProgress, Progress
from carbon_sdk.dev.service import http_ok
from carbon_sdk.dev.state import StateDir
from carbon_sdk.dev.supervisor import dependency_levels


class Web(Service):
    name = "web"
    ports = ("http",)
    main_port = "http"
    ready_timeout = 10.0

    def command(self, ctx: ServiceContext) -> list[str]:
        return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(ctx.ports["http"])]

    def probe(self, ctx: ServiceContext) -> bool:
        return http_ok(f"http://127.0.0.1:{ctx.ports['http']}/")

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        return {"url": f"http://127.0.0.1:{ctx.ports['http']}", "token": ctx.secrets["token"]}

    secrets = ("token",)


class Api(Web):
    name = "api"
    depends_on = ("web",)


class NeverReady(Web):
    name = "never"
    ready_timeout = 1.5

    def command(self, ctx: ServiceContext) -> list[str]:
        script = "import time; print('never-ready is up but deaf', flush=True); time.sleep(60)"
        return [sys.executable, "-c", script]


class ExitsEarly(Web):
    name = "early"

    def command(self, ctx: ServiceContext) -> list[str]:
        script = "import sys; print('boom: bad config', flush=True); sys.exit(3)"
        return [sys.executable, "-c", script]


class Downloads(Web):
    name = "dl"

    def prepare(self, ctx: ServiceContext) -> None:
        for done in (0, 5 * 2**20, 10 * 2**20):
            ctx.downloading(done, 10 * 2**20)


class Reads(Web):
    """Reads its dependency's settings through the context, and writes to the shared dir."""

    name = "reads"
    depends_on = ("web",)

    def prepare(self, ctx: ServiceContext) -> None:
        (ctx.shared_dir / "reads.txt").parent.mkdir(parents=True, exist_ok=True)
        (ctx.shared_dir / "reads.txt").write_text("shared")

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        return {**super().settings(ctx), "upstream": ctx.dependency("web")["url"]}


class Undeclared(Web):
    name = "undeclared"

    def prepare(self, ctx: ServiceContext) -> None:
        ctx.dependency("web")


class ObjectStore(Web):
    """A tiny server under a connector's name, so the stack writes it into its profile."""

    name = "s3"
    secrets = ()

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        return {"endpoint_url": f"http://127.0.0.1:{ctx.ports['http']}"}


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Web(),
        Api(),
        NeverReady(),
        ExitsEarly(),
        Downloads(),
        Reads(),
        Undeclared(),
        ObjectStore(),
    )
}


class Recorder(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []

    def starting(self, name: str) -> None:
        self.events.append(("starting", name))

    def ready(self, name: str, seconds: float) -> None:
        self.events.append(("ready", name))

    def stopped(self, name: str) -> None:
        self.events.append(("stopped", name))


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path / "dev", services=SERVICES, profile=None)
    yield s
    s.down(purge=True)
    for record in s.records():
        assert record.handle is None


def _state(stack: Stack, name: str) -> State:
    (status,) = [s for s in stack.status() if s.name == name]
    return status.state


def _pid(stack: Stack, name: str) -> int:
    (status,) = [s for s in stack.status() if s.name == name]
    assert status.pid is not None
    return status.pid


# -- ports ------------------------------------------------------------------------------------


def test_ports_are_distinct_free_and_not_well_known() -> None:
    chosen = port_alloc.allocate(["a", "b", "c", "d"])
    assert len(set(chosen.values())) == 4
    assert all(port_alloc.is_free(p) and p > 1024 for p in chosen.values())


def test_ports_with_offset_keep_the_twin_free() -> None:
    chosen = port_alloc.allocate(["a", "b"], offset=10000)
    for port in chosen.values():
        assert port + 10000 <= 65535
        assert port_alloc.is_free(port + 10000)


def test_preferred_port_is_kept_when_free_and_replaced_when_taken() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        free = port_alloc.allocate(["x"])["x"]
        chosen = port_alloc.allocate(["x", "y"], preferred={"x": free, "y": taken})
    assert chosen["x"] == free
    assert chosen["y"] != taken


def test_excluded_ports_are_not_handed_out() -> None:
    exclude: set[int] = set()
    first = port_alloc.allocate(["a"], exclude=exclude)
    second = port_alloc.allocate(["a"], preferred=first, exclude=exclude)
    assert first != second


# -- up / status / down -----------------------------------------------------------------------


def test_up_status_down(stack: Stack) -> None:
    started = stack.up(["web"])
    assert [(s.name, s.already_running) for s in started] == [("web", False)]
    (status,) = stack.status()
    assert status.state is State.RUNNING
    assert status.pid and status.port and status.uptime is not None
    assert status.log_path.is_file()
    assert http_ok(f"http://127.0.0.1:{status.port}/")
    handle = stack.records()[0].handle
    assert handle is not None and handle.pgid == handle.pid  # its own process group

    assert stack.down() == ["web"]
    assert not process.group_members(handle)
    assert [s.state for s in stack.status()] == [State.STOPPED]
    assert stack.down() == []  # idempotent


def test_up_is_idempotent(stack: Stack) -> None:
    stack.up(["web"])
    pid = _pid(stack, "web")
    again = stack.up(["web"])
    assert [(s.name, s.already_running) for s in again] == [("web", True)]
    assert _pid(stack, "web") == pid


def test_dependencies_start_first_and_stop_last(stack: Stack) -> None:
    progress = Recorder()
    stack.up(["api"], progress=progress)
    assert progress.events == [
        ("starting", "web"),
        ("ready", "web"),
        ("starting", "api"),
        ("ready", "api"),
    ]
    stack.down(progress=progress)
    assert progress.events[-2:] == [("stopped", "api"), ("stopped", "web")]


def test_a_service_reads_its_dependencies_through_the_context(stack: Stack) -> None:
    stack.up(["reads"])
    settings = stack.settings()
    assert settings["reads"]["upstream"] == settings["web"]["url"]
    with pytest.raises(DevStackError, match="undeclared needs web running first"):
        stack.up(["undeclared"])  # web runs, but undeclared does not depend on it


def test_purge_removes_the_shared_dir(stack: Stack) -> None:
    stack.up(["reads"])
    shared = StateDir(stack.home).shared_dir
    assert (shared / "reads.txt").read_text() == "shared"
    stack.down(purge=True)
    assert not shared.exists()


def test_dependency_levels() -> None:
    deps = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    assert dependency_levels(deps, ["d"]) == [["a"], ["b", "c"], ["d"]]
    assert dependency_levels(deps, ["b"]) == [["a"], ["b"]]
    with pytest.raises(DevStackError, match="unknown service 'zzz'"):
        dependency_levels(deps, ["zzz"])
    with pytest.raises(DevStackError, match="cycle"):
        dependency_levels({"x": ("y",), "y": ("x",)}, ["x"])


def test_readiness_timeout_fails_fast_with_log_tail(stack: Stack) -> None:
    began = time.monotonic()
    with pytest.raises(ServiceStartError) as caught:
        stack.up(["never"])
    assert time.monotonic() - began < NeverReady.ready_timeout + 5
    message = str(caught.value)
    assert "not ready after 1.5 s" in message
    assert "never-ready is up but deaf" in message  # the log tail
    assert [s.state for s in stack.status()] == [State.STOPPED]  # and nothing left running


def test_server_that_exits_reports_exit_code_and_log(stack: Stack) -> None:
    with pytest.raises(ServiceStartError, match="exited with code 3") as caught:
        stack.up(["early"])
    assert "boom: bad config" in str(caught.value)


def _kill_and_wait_failed(stack: Stack) -> None:
    os.kill(_pid(stack, "web"), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while stack.status()[0].state is not State.FAILED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.status()[0].state is State.FAILED


def test_crash_shows_failed_and_up_restarts_it(stack: Stack) -> None:
    stack.up(["web"])
    old = _pid(stack, "web")
    _kill_and_wait_failed(stack)
    restarted = stack.up(["web"])
    assert [(s.name, s.already_running) for s in restarted] == [("web", False)]
    assert stack.status()[0].state is State.RUNNING
    assert _pid(stack, "web") != old


def test_down_after_crash(stack: Stack) -> None:
    stack.up(["web"])
    _kill_and_wait_failed(stack)
    assert stack.down() == []  # nothing was left to stop ...
    assert stack.status()[0].state is State.STOPPED  # ... and the record is cleared
    assert stack.down() == []


def test_restart_keeps_ports_and_secrets(stack: Stack) -> None:
    stack.up(["web"])
    before = stack.settings()["web"]
    stack.down()
    stack.up(["web"])
    assert stack.settings()["web"] == before


def test_two_stacks_side_by_side(tmp_path: Path) -> None:
    one = Stack(tmp_path / "one", services=SERVICES, profile=None)
    two = Stack(tmp_path / "two", services=SERVICES, profile=None)
    try:
        one.up(["web"])
        two.up(["web"])
        assert _pid(one, "web") != _pid(two, "web")
        assert one.settings()["web"]["url"] != two.settings()["web"]["url"]
        assert one.settings()["web"]["token"] != two.settings()["web"]["token"]
        one.down()
        assert two.status()[0].state is State.RUNNING
    finally:
        one.down(purge=True)
        two.down(purge=True)


def _profiles(isolated_config: Path) -> dict[str, dict[str, dict[str, object]]]:
    path = isolated_config / "user.yaml"
    data = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    return data.get("profiles") or {}


def test_env_and_profile(tmp_path: Path, isolated_config: Path) -> None:
    stack = Stack(tmp_path / "dev", services=SERVICES, profile="dev")
    try:
        stack.up(["web", "s3"])
        url = stack.settings()["web"]["url"]
        assert stack.env()["CARBON_WEB__URL"] == url
        # the profile holds connectors' sections only: "web" is no connector, and a section
        # the SDK does not know would make every later settings load fail
        assert _profiles(isolated_config)["dev"] == {"s3": stack.settings()["s3"]}
    finally:
        stack.down(purge=True)
    assert stack.env() == {}
    assert _profiles(isolated_config) == {}  # no profile left pointing at dead ports


def test_profile_name_follows_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    standard = tmp_path / "data" / "carbon-sdk" / "dev"
    assert Stack(standard, services=SERVICES).profile == "dev"
    one = Stack(tmp_path / "a" / "My Stack", services=SERVICES).profile
    two = Stack(tmp_path / "b" / "My Stack", services=SERVICES).profile
    assert one and two and one.startswith("dev-my-stack-") and two.startswith("dev-my-stack-")
    assert one != two  # same directory name, another path: another profile
    assert Stack(tmp_path / "a" / "My Stack", services=SERVICES).profile == one  # stable
    assert Stack(standard, services=SERVICES, profile=None).profile is None


def test_two_stacks_keep_their_own_profiles(tmp_path: Path, isolated_config: Path) -> None:
    """The second stack's up/down never touches the first one's profile."""
    first = Stack(tmp_path / "first", services=SERVICES)
    second = Stack(tmp_path / "second", services=SERVICES)
    assert first.profile != second.profile
    try:
        first.up(["s3"])
        mine = _profiles(isolated_config)[str(first.profile)]
        second.up(["s3"])
        profiles = _profiles(isolated_config)
        assert profiles[str(first.profile)] == mine == {"s3": first.settings()["s3"]}
        assert profiles[str(second.profile)] == {"s3": second.settings()["s3"]}
        assert mine != profiles[str(second.profile)]
        second.down()
        assert _profiles(isolated_config) == {str(first.profile): mine}
        assert http_ok(str(mine["s3"]["endpoint_url"]))  # the first one still answers there
    finally:
        first.down(purge=True)
        second.down(purge=True)
    assert _profiles(isolated_config) == {}


def test_a_crashed_service_leaves_the_profile_and_is_dropped_by_the_next_up(
    tmp_path: Path, isolated_config: Path
) -> None:
    stack = Stack(tmp_path / "dev", services=SERVICES, profile="dev")
    try:
        stack.up(["web", "s3"])
        os.kill(_pid(stack, "s3"), signal.SIGKILL)
        deadline = time.monotonic() + 5
        while _state(stack, "s3") is not State.FAILED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(stack, "s3") is State.FAILED
        assert _state(stack, "web") is State.RUNNING
        stack.up(["web"])  # not asked for: s3 stays down and leaves the profile
        assert "dev" not in _profiles(isolated_config)
        stack.up(["s3"])
        assert _profiles(isolated_config)["dev"] == {"s3": stack.settings()["s3"]}
    finally:
        stack.down(purge=True)


def test_plain_progress_lines_include_download_size_and_speed(stack: Stack) -> None:
    out = io.StringIO()
    stack.up(["dl"], progress=PlainProgress(out))
    stack.up(["dl"], progress=PlainProgress(out))
    lines = out.getvalue().splitlines()
    assert lines[0] == "dl: starting"
    assert any(line.startswith("dl: downloading 10.0 MB / 10.0 MB at") for line in lines)
    assert any(line.startswith("dl: ready in") for line in lines)
    assert lines[-1].startswith("dl: already running (pid ")


def test_down_purge_removes_data(stack: Stack) -> None:
    stack.up(["web"])
    assert (stack.home / "web").is_dir()
    stack.down(purge=True)
    assert not (stack.home / "web").exists()
    assert stack.status() == []


def test_reused_pid_is_not_ours() -> None:
    me = process.ProcessHandle(os.getpid(), os.getpgid(0), process.start_ticks(os.getpid()))
    assert process.is_alive(me)
    impostor = process.ProcessHandle(me.pid, me.pgid, (me.start_ticks or 0) + 1)
    assert not process.is_alive(impostor)
