"""The end-to-end platform on local processes: Keycloak, the JWT-validating Trino, PostgreSQL and
S3 from the session's dev stack, and a JupyterHub configured from the **rendered chart**.

The chart is rendered with its defaults (Cloudflare Access, ``auth: jupyterhub`` for Trino,
monitoring on), its service blocks pointed at the stack (``tests/helm/chartlib``, the same code
as the chart contract test); the user pods' ConfigMap and Secret are laid out under one
directory (the same objects are mounted in every pod) and the hub's ``extraEnv`` is resolved
from the rendered ``carbon-hub-secrets``. On failure, the report shows the hub log, each user
server's log (the spawner's) and the browser console.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import values_schema
from chartlib import (
    REPO,
    Obj,
    kubelet_layout,
    merged_values,
    overlay,
    pod_env,
    render,
    secret_env,
    stack_values,
)

from carbon_sdk.dev.jupyterhub_oidc import OidcJupyterHubService, Platform
from carbon_sdk.dev.process import tail
from carbon_sdk.dev.pytest_plugin import StackSession, StartServices
from carbon_sdk.dev.trino import OidcTrinoService

HUB = "jupyterhub_oidc"
# The chart's service blocks and the stack services serving them.
SERVED_BY = {"postgres": "postgres", "s3": "s3", "trino": "trino_oidc"}
ARTIFACTS = REPO / "build" / "e2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOG_LINES = 80
DIAGNOSTICS = pytest.StashKey["Diagnostics"]()


@dataclass
class Diagnostics:
    """What a failing e2e test shows: the hub log, the user servers' logs, the browser console."""

    hub_log: Path | None = None
    server_logs: Path | None = None
    console: list[str] = field(default_factory=list)

    def sections(self) -> list[tuple[str, str]]:
        out = []
        if self.hub_log:
            out.append((f"hub log ({self.hub_log})", tail(self.hub_log, LOG_LINES) or "(empty)"))
        for log in sorted(self.server_logs.glob("*.log")) if self.server_logs else []:
            out.append((f"spawner log {log.name}", tail(log, LOG_LINES) or "(empty)"))
        out.append(("browser console", "\n".join(self.console[-LOG_LINES:]) or "(nothing)"))
        return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    diagnostics = item.config.stash.get(DIAGNOSTICS, None)
    if report.failed and diagnostics is not None:
        for title, text in diagnostics.sections():
            report.sections.append((title, text))


@dataclass(frozen=True)
class E2E:
    """The running e2e platform."""

    session: StackSession
    objects: list[Obj]  # the rendered chart
    values: Obj  # its merged values
    hub: dict[str, object]  # the hub service's settings
    keycloak: dict[str, object]
    trino: dict[str, object]
    metrics_token: str

    @property
    def username_claim(self) -> str:
        return str(
            self.values["jupyterhub"]["hub"]["config"]["GenericOAuthenticator"]["username_claim"]
        )


def chart_values(session: StackSession, keycloak: dict[str, object], metrics_token: str) -> Obj:
    """The chart's defaults, service blocks pointed at the stack, hub secrets inline."""
    sdk = values_schema.sdk_schema()
    services = stack_values(session, sdk, SERVED_BY, {})
    hub_secrets = {
        "existingSecret": "",
        "inline": {
            "oauth-client-secret": str(keycloak["client_secret"]),
            "metrics-token": metrics_token,
            "db-password": "unused-with-sqlite",
        },
    }
    return overlay({}, {**services, "hubSecrets": hub_secrets})


@pytest.fixture(scope="session")
def diagnostics(pytestconfig: pytest.Config) -> Diagnostics:
    return pytestconfig.stash.setdefault(DIAGNOSTICS, Diagnostics())


@pytest.fixture(scope="session")
def e2e(
    carbon_services: StartServices,
    diagnostics: Diagnostics,
) -> E2E:
    """Keycloak, Trino (JWT), PostgreSQL, S3 and the hub, configured from the rendered chart."""
    session = carbon_services("postgres", "s3", "keycloak")
    keycloak = session.settings("keycloak")
    claim = merged_values({})["jupyterhub"]["hub"]["config"]["GenericOAuthenticator"][
        "username_claim"
    ]
    session.stack.services["trino_oidc"] = OidcTrinoService(principal_field=claim)
    session.require("trino_oidc")
    metrics_token = secrets.token_hex(16)
    values = chart_values(session, keycloak, metrics_token)
    objects = render(values)
    merged = merged_values(values)
    z2jh = merged["jupyterhub"]
    pod = session.stack.home / "e2e-pod"  # with the stack (pytest's tmp dirs rotate)
    mounts = kubelet_layout(pod, objects, z2jh["singleuser"])
    platform = Platform(
        values=z2jh,
        hub_env=secret_env(objects, z2jh["hub"].get("extraEnv")),
        singleuser_env=pod_env(pod, z2jh["singleuser"].get("extraEnv"), mounts),
        hooks_dir=REPO / "image" / "before-notebook.d",
    )
    session.stack.services[HUB] = OidcJupyterHubService(platform)
    session.require(HUB)
    hub = session.settings(HUB)
    diagnostics.hub_log = next(s.log_path for s in session.stack.status() if s.name == HUB)
    diagnostics.server_logs = Path(str(hub["log_dir"]))
    return E2E(
        session=session,
        objects=objects,
        values=merged,
        hub=hub,
        keycloak=keycloak,
        trino=session.settings("trino_oidc"),
        metrics_token=metrics_token,
    )


@pytest.fixture(scope="session")
def browser(diagnostics: Diagnostics) -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (no browser download: ``executable_path``)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go (``build/e2e``, kept after the run)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
