"""Shared by the e2e tests and their fixtures: the platform handle, the diagnostics a failure
shows, the chart values pointed at the stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import values_schema
from chartlib import (
    REPO,
    Obj,
    overlay,
    stack_values,
)

from carbon_sdk.dev.process import tail
from carbon_sdk.dev.pytest_plugin import StackSession

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
