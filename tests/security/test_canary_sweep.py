"""The canary sweep: distinct canary secrets set through env vars, secret files and configure();
then every CLI output, settings repr, DEBUG log line and error (with its cause chain) of the
connectors, against the real stack with wrong credentials, refusing ports, a malformed host,
and an HTTPS server that echoes the Authorization header, must hold no encoded form of any.

The totals are reported in the terminal summary."""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from carbon_sdk import postgres, s3, trino
from carbon_sdk.cli import app
from carbon_sdk.dev.pytest_plugin import StartServices
from carbon_sdk.dev.tls import server_certificate, stack_ca
from carbon_sdk.settings.carbon import configure, get_settings, reload

from .conftest import CANARIES, Sweep

pytestmark = pytest.mark.stack

SECRET_FIELDS = (("postgres", "password"), ("s3", "secret_access_key"), ("trino", "password"))
SOURCES = ("env", "file", "configure")
NAMES = list(CANARIES)
GROUPS = [NAMES[i : i + 5] for i in range(0, len(NAMES), 5)]  # 3 fields, trino.jwt, hub token
CLI = (
    ["config", "show"],
    ["config", "show", "--json"],
    ["config", "show", "postgres"],
    ["config", "schema"],
    ["config", "schema", "--json"],
    ["doctor"],
    ["doctor", "--json"],
)


class Outputs:
    """Captures outputs of one test and checks each with the sweep."""

    def __init__(self, sweep: Sweep, caplog: pytest.LogCaptureFixture) -> None:
        self.sweep = sweep
        self.caplog = caplog
        self.leaks: list[str] = []

    def assert_no_leak(self) -> None:
        assert not self.leaks, "\n".join(self.leaks)

    def text(self, output: str, text: str) -> None:
        self.leaks += self.sweep.check(output, text)

    def cli(self, phase: str) -> None:
        for args in CLI:
            result = CliRunner().invoke(app, args, env={"COLUMNS": "2000"})
            self.text(f"{phase}: carbon-sdk {' '.join(args)}", result.output)

    def settings(self, phase: str) -> None:
        every = get_settings()
        self.text(f"{phase}: repr(get_settings())", repr(every))
        for service in ("postgres", "s3", "trino"):
            settings = getattr(every, service)
            self.text(f"{phase}: {service} settings repr", repr(settings))
            self.text(f"{phase}: {service} settings str", str(settings))
            self.text(f"{phase}: {service} debug_string()", settings.debug_string())

    def call(self, output: str, call: Callable[[], object]) -> None:
        """The error (traceback with its cause chain) or result repr, and the DEBUG log."""
        self.caplog.clear()
        try:
            result = call()
        except Exception as exc:  # every error path is an output
            self.text(f"{output} error", "".join(traceback.format_exception(exc)))
        else:
            self.text(f"{output} result", repr(result))
        self.text(f"{output} log", self.caplog.text)

    def factories(self, phase: str) -> None:
        self.call(f"{phase}: postgres.connect", postgres.connect)
        self.call(f"{phase}: postgres.pool", postgres.pool)
        self.call(f"{phase}: postgres.engine", lambda: postgres.engine().connect())
        self.call(f"{phase}: postgres.adbc_connect", postgres.adbc_connect)
        self.call(f"{phase}: postgres.query", lambda: postgres.query("select 1"))
        self.call(f"{phase}: s3.client", s3.client)
        self.call(f"{phase}: s3.filesystem", s3.filesystem)
        self.call(f"{phase}: s3.ls", lambda: s3.ls(s3.url()))
        self.call(f"{phase}: s3.upload", lambda: s3.upload(__file__, s3.url("canary/")))
        self.call(f"{phase}: trino.connect", trino.connect)
        self.call(f"{phase}: trino.engine", lambda: trino.engine().connect())
        self.call(f"{phase}: trino.query", lambda: trino.query("select 1"))
        self.call(f"{phase}: trino.query jwt", lambda: trino.query("select 1", auth="jwt"))


@pytest.fixture
def outputs(
    sweep: Sweep, caplog: pytest.LogCaptureFixture, report: dict[str, str]
) -> Iterator[Outputs]:
    with caplog.at_level(logging.DEBUG, logger="carbon_sdk"):
        yield Outputs(sweep, caplog)
    report["canary sweep"] = sweep.summary()


@pytest.fixture
def stack(carbon_services: StartServices, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The stack's postgres, s3 and https Trino (auth=basic) in CARBON_* variables; returns
    their settings, real secrets included."""
    session = carbon_services("postgres", "s3", "trino_secure")
    for key, value in session.env("postgres", "s3").items():
        monkeypatch.setenv(key, value)
    secure = session.settings("trino_secure")
    for key in ("host", "port", "http_scheme", "ca_bundle", "user"):
        monkeypatch.setenv(f"CARBON_TRINO__{key.upper()}", str(secure[key]))
    monkeypatch.setenv("CARBON_TRINO__AUTH", "basic")
    return {name: session.settings(name) for name in ("postgres", "s3")} | {"trino": secure}


@pytest.mark.parametrize("group", range(len(GROUPS)))
def test_no_canary_in_any_output(
    group: int, stack: dict[str, Any], outputs: Outputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = SOURCES[group % len(SOURCES)]
    *secrets, jwt, hub_token = (CANARIES[name] for name in GROUPS[group])
    overrides: dict[str, dict[str, str]] = {"trino": {"jwt": jwt}}
    for (service, field), secret in zip(SECRET_FIELDS, secrets, strict=True):
        variable = f"CARBON_{service.upper()}__{field.upper()}"
        monkeypatch.delenv(variable, raising=False)
        if source == "env":
            monkeypatch.setenv(variable, secret)
        elif source == "file":
            path = Path(os.environ["CARBON_SECRETS_DIR"]) / f"{service}__{field}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secret, encoding="utf-8")
        else:
            overrides.setdefault(service, {})[field] = secret
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub_token)
    reload()
    configure(**overrides)

    phase = f"{source}, wrong credentials"
    outputs.cli(phase)
    outputs.settings(phase)
    outputs.factories(phase)

    configure(postgres={"port": 1}, s3={"endpoint_url": "http://127.0.0.1:1"}, trino={"port": 1})
    outputs.cli(f"{source}, refusing ports")
    outputs.factories(f"{source}, refusing ports")

    configure(postgres={"host": "[::1"}, s3={"endpoint_url": "http://[::1"}, trino={"host": "[::1"})
    outputs.cli(f"{source}, malformed host")
    outputs.factories(f"{source}, malformed host")

    pg, trino_secure = stack["postgres"], stack["trino"]
    configure(
        postgres={"host": pg["host"], "port": pg["port"]},
        s3={"endpoint_url": stack["s3"]["endpoint_url"]},
        trino={"host": trino_secure["host"], "port": trino_secure["port"]},
    )
    phase = f"{source}, right credentials"
    outputs.call(
        f"{phase}: postgres bad SQL",
        lambda: postgres.query("selec 1", password=pg["password"]),
    )
    outputs.call(
        f"{phase}: trino bad SQL",
        lambda: trino.query("select 1 frm nowhere", password=trino_secure["password"]),
    )
    configure(s3={"secret_access_key": stack["s3"]["secret_access_key"]})
    outputs.call(f"{phase}: s3 missing bucket", lambda: s3.ls("s3://no-such-bucket-canary/"))
    outputs.assert_no_leak()


# ---- a server that echoes the Authorization header in its error body ---------------------------


class _Echo(BaseHTTPRequestHandler):
    """Answers every request with ``status`` and a body holding the Authorization header's
    bytes as received (in JSON for 400)."""

    status = 500

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        sent = self.headers.get("Authorization", "")  # decoded as Latin-1: the bytes sent
        text = f"rejected Authorization: {sent}"
        body = (json.dumps({"message": text}) if self.status == 400 else text).encode("latin-1")
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        return None


class _Hub(BaseHTTPRequestHandler):
    """JupyterHub's ``GET /hub/api/users/canary-user``, whose auth_state holds ``token``."""

    token = ""

    def do_GET(self) -> None:
        body = json.dumps({"name": "canary-user", "auth_state": {"access_token": self.token}})
        self.send_response(200 if self.path == "/hub/api/users/canary-user" else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        return None


@contextmanager
def _serve(server: ThreadingHTTPServer) -> Iterator[ThreadingHTTPServer]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[tuple[type[_Echo], int, Path]]:
    """The echo server over https: its handler class, port and CA certificate."""
    ca = stack_ca(tmp_path)
    keystore = server_certificate(ca, tmp_path / "echo").keystore_pem
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(keystore)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with _serve(server) as running:
        yield _Echo, running.server_port, ca.cert_pem


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_Hub]]:
    with _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Hub)) as server:
        monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{server.server_port}/hub/api")
        monkeypatch.setenv("JUPYTERHUB_USER", "canary-user")
        yield _Hub


@pytest.mark.parametrize("status", [500, 400, 401])
@pytest.mark.parametrize("auth", ["basic", "jwt", "jupyterhub"])
def test_echoed_authorization_header_is_redacted(
    auth: str,
    status: int,
    echo: tuple[type[_Echo], int, Path],
    hub: type[_Hub],
    outputs: Outputs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, port, ca = echo
    handler.status = status
    for name, canary in CANARIES.items():
        api_token = CANARIES[NAMES[NAMES.index(name) - 1]]
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", api_token)
        hub.token = canary
        reload()
        configure(
            trino={
                "host": "127.0.0.1",
                "port": port,
                "http_scheme": "https",
                "ca_bundle": str(ca),
                "user": "canary-user",
                "auth": auth,
                "password": canary,
                "jwt": canary,
            }
        )
        outputs.call(f"echo {status}, auth={auth}, {name}", lambda: trino.query("select 1"))
    outputs.assert_no_leak()
