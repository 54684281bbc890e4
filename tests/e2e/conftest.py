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

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chartlib import (
    REPO,
    kubelet_layout,
    merged_values,
    pod_env,
    render,
    secret_env,
)
from e2elib import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DIAGNOSTICS,
    E2E,
    HUB,
    Diagnostics,
    chart_values,
)

from carbon_sdk.dev.jupyterhub_oidc import OidcJupyterHubService, Platform
from carbon_sdk.dev.pytest_plugin import StartServices
from carbon_sdk.dev.trino import OidcTrinoService


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    diagnostics = item.config.stash.get(DIAGNOSTICS, None)
    if report.failed and diagnostics is not None:
        for title, text in diagnostics.sections():
            report.sections.append((title, text))


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
    # stable per stack, so a hub left running (CARBON_TEST_STACK_HOME) keeps accepting it
    metrics_token = hashlib.sha256(f"e2e-metrics:{keycloak['client_secret']}".encode()).hexdigest()
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
