"""The stack's real JupyterHub 5: a user logs in, their single-user server is spawned, and the
SDK reads the OAuth access token from ``auth_state`` with that server's own API token (taken from
the spawned process's environment, exactly what code in the server sees)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import requests
from proclib import listening, tree

from carbon_sdk import AuthFailed, ConfigurationError, trino
from carbon_sdk._auth import hub_access_token
from carbon_sdk.dev import Stack
from carbon_sdk.dev.ports import is_free
from carbon_sdk.dev.pytest_plugin import StackSession
from carbon_sdk.settings.carbon import configure

# the module fixture starts trino_secure and the hub and spawns a server: minutes on a busy machine
pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.timeout(900)]

SPAWN_TIMEOUT = 120.0


@dataclass(frozen=True)
class UserServer:
    """A logged-in user's running single-user server."""

    name: str
    pid: int
    env: dict[str, str]  # the JUPYTERHUB_* variables the hub gave the server


def _admin(hub: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"token {hub['api_token']}"}


def log_in_and_spawn(hub: dict[str, object], name: str) -> UserServer:
    """Log ``name`` in through the login form (this stores auth_state), spawn the server, and
    read the environment of the spawned process (its pid is in the spawner state)."""
    browser = requests.Session()
    browser.get(f"{hub['url']}hub/login", timeout=30).raise_for_status()
    login = browser.post(
        f"{hub['url']}hub/login",
        data={"username": name, "password": hub["password"], "_xsrf": browser.cookies["_xsrf"]},
        allow_redirects=False,
        timeout=30,
    )
    assert login.status_code == 302, login.text
    spawn = requests.post(f"{hub['api_url']}/users/{name}/server", headers=_admin(hub), timeout=60)
    assert spawn.status_code in (201, 202), spawn.text
    deadline = time.monotonic() + SPAWN_TIMEOUT
    while True:
        model = requests.get(f"{hub['api_url']}/users/{name}", headers=_admin(hub), timeout=30)
        server = model.json()["servers"].get("")
        if server and server["ready"]:
            break
        assert time.monotonic() < deadline, f"{name}'s server not ready: {server}"
        time.sleep(0.25)
    pid = int(server["state"]["pid"])
    environ = psutil.Process(pid).environ()
    return UserServer(name, pid, {k: v for k, v in environ.items() if k.startswith("JUPYTERHUB_")})


def jwt_claims(token: str, key: str) -> dict[str, object]:
    """The claims of an HS256 token, after checking its signature with ``key``."""
    header, body, signature = token.split(".")
    expected = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected, "not signed with this key"
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(body + "=="))
    return claims


@pytest.fixture(scope="module")
def hub_stack(carbon_services: Callable[..., StackSession]) -> StackSession:
    """The session's stack with trino_secure (whose key signs the access tokens) and the hub."""
    return carbon_services("postgres", "s3", "trino_secure", "jupyterhub")


@pytest.fixture(scope="module")
def alice(hub_stack: StackSession) -> UserServer:
    return log_in_and_spawn(hub_stack.settings("jupyterhub"), "alice")


@pytest.fixture
def in_server(alice: UserServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[UserServer]:
    """This test runs with the single-user server's JUPYTERHUB_* environment."""
    for key, value in alice.env.items():
        monkeypatch.setenv(key, value)
    yield alice


def _get(server: UserServer, path: str) -> dict[str, object]:
    response = requests.get(
        server.env["JUPYTERHUB_API_URL"] + path,
        headers={"Authorization": f"token {server.env['JUPYTERHUB_API_TOKEN']}"},
        timeout=30,
    )
    response.raise_for_status()
    model: dict[str, object] = response.json()
    return model


def test_the_server_gets_the_hub_variables(alice: UserServer, hub_stack: StackSession) -> None:
    hub = hub_stack.settings("jupyterhub")
    assert alice.env["JUPYTERHUB_USER"] == "alice"
    assert alice.env["JUPYTERHUB_API_URL"] == hub["api_url"]
    assert alice.env["JUPYTERHUB_API_TOKEN"] not in (hub["api_token"], "")


def test_get_user_never_returns_auth_state(alice: UserServer) -> None:
    """JupyterHub 5 answers GET /user with auth_state null even when the token may read it;
    only GET /users/{name} includes it (the fix in carbon_sdk._auth relies on this)."""
    me = _get(alice, "/user")
    assert me["name"] == "alice" and me["auth_state"] is None
    assert "admin:auth_state!user=alice" in me["scopes"]  # granted via the server role
    state = _get(alice, "/users/alice")["auth_state"]
    assert isinstance(state, dict)
    assert set(state) == {
        "access_token",
        "refresh_token",
        "id_token",
        "oauth_user",
        "scope",
        "token_response",
    }


def test_hub_access_token_reads_the_users_access_token(
    in_server: UserServer, hub_stack: StackSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = hub_stack.settings("jupyterhub")
    stored = requests.get(f"{hub['api_url']}/users/alice", headers=_admin(hub), timeout=30).json()
    known = stored["auth_state"]["access_token"]
    assert hub_access_token() == known
    claims = jwt_claims(known, str(hub_stack.settings("trino_secure")["jwt_key"]))
    assert claims["sub"] == "alice" and int(str(claims["exp"])) > time.time()
    monkeypatch.delenv("JUPYTERHUB_USER")  # the name then comes from GET /user
    assert hub_access_token() == known


def test_token_without_the_auth_state_scope_is_a_configuration_error(
    in_server: UserServer, hub_stack: StackSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = hub_stack.settings("jupyterhub")
    created = requests.post(
        f"{hub['api_url']}/users/alice/tokens",
        headers=_admin(hub),
        json={"scopes": ["read:users:name!user"], "note": "no auth_state", "expires_in": 600},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    limited = created.json()["token"]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", limited)
    with pytest.raises(ConfigurationError, match="enable_auth_state") as info:
        hub_access_token()
    assert "admin:auth_state!user" in str(info.value)
    assert limited not in str(info.value)


def test_wrong_api_token_is_auth_failed_without_the_token(
    in_server: UserServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "canary-wrong-hub-token-0123456789"
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", wrong)
    with pytest.raises(AuthFailed, match="403") as info:
        hub_access_token()
    assert wrong not in str(info.value)


def test_trino_auth_jupyterhub_runs_as_the_hub_user(
    in_server: UserServer, hub_stack: StackSession
) -> None:
    secure = hub_stack.settings("trino_secure")
    configure(
        trino={
            "host": secure["host"],
            "port": secure["port"],
            "http_scheme": "https",
            "ca_bundle": secure["ca_bundle"],
        }
    )
    df = trino.query("select current_user as u", auth="jupyterhub")
    assert df.loc[0, "u"] == "alice"


# -- the service itself, on a stack of its own -----------------------------------------------


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_hub_binds_loopback_only_and_stops_cleanly(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "home", profile=None)
    try:
        (started,) = stack.up(["jupyterhub"])
        hub = stack.settings()["jupyterhub"]
        bob = log_in_and_spawn(hub, "bob")
        (record,) = stack.records()
        assert record.pid is not None
        pids = tree(record.pid)
        assert bob.pid in pids and len(pids) >= 3  # hub, proxy, bob's server
        sockets = listening(pids)
        assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets
        assert set(record.ports.values()) <= {port for _, port in sockets}
        print(f"jupyterhub ready in {started.seconds:.1f} s")
    finally:
        stopped_at = time.monotonic()
        stack.down()
    print(f"jupyterhub stopped in {time.monotonic() - stopped_at:.1f} s")
    assert not [pid for pid in pids if _alive(pid)]
    assert all(is_free(port) for port in record.ports.values())
