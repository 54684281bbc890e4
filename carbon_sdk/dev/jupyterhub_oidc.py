"""JupyterHub configured the way the Helm chart configures it, logging users in through the
stack's Keycloak: ``carbon-sdk dev up jupyterhub_oidc`` (not started by a bare ``dev up``).

Where the chart's Zero to JupyterHub values (its ``jupyterhub:`` block) say how the hub runs,
this service applies them as Zero to JupyterHub's own ``jupyterhub_config.py`` does, for the
parts that mean something outside Kubernetes (:func:`z2jh_config`):

* ``hub.config``: every section as it is (``GenericOAuthenticator``, ``Authenticator``, ...),
  except the identity provider's endpoints and client id, which point at Keycloak
  (:data:`PROVIDER_KEYS`); the client secret comes from ``$OAUTH_CLIENT_SECRET`` as on the
  platform (``hub.extraEnv``);
* ``hub.loadRoles`` (the ``admin:auth_state!user`` grants, the Prometheus service's role),
  ``hub.authenticatePrometheus``, and the ``hub.extraConfig`` snippets, run after the rest.

The test harness (``tests/e2e``) gives it the values from the rendered chart, the hub's
``extraEnv`` resolved from the rendered Secret, and the user servers' environment and mounted
files laid out from the rendered ConfigMap and Secret (:class:`Platform`). Without a platform
it uses :data:`DEFAULT_VALUES`, the same shape in brief, for a hub to try by hand.

User servers are local processes (:class:`jupyterhub.spawner.SimpleLocalProcessSpawner`, one
home directory per user under this service's home) started by a script that runs the notebook
image's ``before-notebook.d`` hooks first, as the image's ``start.sh`` does; each user's server
writes its log to ``logs/<user>.log`` here.
"""

from __future__ import annotations

import copy
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from carbon_sdk._files import write_atomic

from .jupyterhub import ADMIN_ROLE, JupyterHubService, common_config, crypt_key
from .keycloak import register_redirect_uri
from .ports import HOST
from .service import ServiceContext

# The GenericOAuthenticator settings that name the identity provider: replaced by Keycloak's.
PROVIDER_KEYS = ("client_id", "authorize_url", "token_url", "userdata_url", "oauth_callback_url")
# The chart's values in brief (hub.config and hub.loadRoles), for a hub without a platform.
DEFAULT_VALUES: dict[str, Any] = {
    "hub": {
        "config": {
            "JupyterHub": {"authenticator_class": "generic-oauth"},
            "Authenticator": {"enable_auth_state": True, "allow_all": True},
            "GenericOAuthenticator": {
                "scope": ["openid", "email", "profile"],
                "username_claim": "email",
            },
        },
        "loadRoles": {
            "user": {"scopes": ["self", "admin:auth_state!user"]},
            "server": {
                "scopes": [
                    "users:activity!user",
                    "access:servers!server",
                    "admin:auth_state!user",
                ]
            },
        },
    }
}


@dataclass(frozen=True)
class Platform:
    """What the platform gives the hub and its user servers.

    Attributes:
        values: the Zero to JupyterHub values (the chart's merged ``jupyterhub:`` block).
        hub_env: the hub's environment from ``hub.extraEnv`` (secrets resolved).
        singleuser_env: the user servers' environment (``singleuser.extraEnv``, paths pointing
            at the mounted files laid out on this machine).
        hooks_dir: the notebook image's ``before-notebook.d`` (None: no hooks).
    """

    values: Mapping[str, Any]
    hub_env: Mapping[str, str] = field(default_factory=dict)
    singleuser_env: Mapping[str, str] = field(default_factory=dict)
    hooks_dir: Path | None = None


def _provider(keycloak: Mapping[str, object], callback: str) -> dict[str, object]:
    return {
        "client_id": keycloak["client_id"],
        "authorize_url": keycloak["authorize_url"],
        "token_url": keycloak["token_url"],
        "userdata_url": keycloak["userinfo_url"],
        "oauth_callback_url": callback,
    }


def z2jh_config(
    values: Mapping[str, Any], keycloak: Mapping[str, object], callback: str
) -> dict[str, Any]:
    """The traitlets sections Zero to JupyterHub makes of ``values`` (``hub.config``,
    ``hub.loadRoles``, ``hub.authenticatePrometheus``), the provider pointed at Keycloak."""
    hub = values.get("hub") or {}
    sections: dict[str, Any] = copy.deepcopy(dict(hub.get("config") or {}))
    oauth = sections.setdefault("GenericOAuthenticator", {})
    oauth.update(_provider(keycloak, callback))
    roles = [{"name": name, **role} for name, role in (hub.get("loadRoles") or {}).items()]
    jupyterhub = sections.setdefault("JupyterHub", {})
    jupyterhub["load_roles"] = roles
    if "authenticatePrometheus" in hub:
        jupyterhub["authenticate_prometheus"] = bool(hub["authenticatePrometheus"])
    return sections


class OidcJupyterHubService(JupyterHubService):
    """The hub with GenericOAuthenticator against Keycloak, configured from the chart's values.

    Args:
        platform: the chart's values and what they inject (None: :data:`DEFAULT_VALUES`).
    """

    name = "jupyterhub_oidc"
    depends_on: ClassVar[tuple[str, ...]] = ("keycloak",)
    secrets: ClassVar[tuple[str, ...]] = ("crypt_seed", "api_token")
    ready_timeout = 90.0

    def __init__(self, platform: Platform | None = None) -> None:
        self.platform = platform or Platform(DEFAULT_VALUES)

    def config_path(self, ctx: ServiceContext) -> Path:
        """``jupyterhub_config.py``: loads the JSON sections, then runs ``hub.extraConfig``."""
        return ctx.home / "jupyterhub_config.py"

    def sections_path(self, ctx: ServiceContext) -> Path:
        """The JSON sections; not ``jupyterhub_config.json``, which traitlets would load after
        the ``.py`` of the same name, undoing what ``hub.extraConfig`` added."""
        return ctx.home / "hub_sections.json"

    def callback_url(self, ctx: ServiceContext) -> str:
        """The hub's OAuth callback, registered with Keycloak on every start."""
        return f"http://{HOST}:{ctx.ports['http']}/hub/oauth_callback"

    def log_dir(self, ctx: ServiceContext) -> Path:
        """Where each user's server writes its log (``<user>.log``)."""
        return ctx.home / "logs"

    def prepare(self, ctx: ServiceContext) -> None:
        """Write the configuration and the start script; register the callback URL."""
        super().prepare(ctx)  # the JSON sections (hub_config below) and the servers' config
        json_path = self.sections_path(ctx)
        snippets = (self.platform.values.get("hub") or {}).get("extraConfig") or {}
        script = [
            "# Generated by carbon-sdk dev (jupyterhub_oidc): the JSON sections, then the",
            "# chart's hub.extraConfig, in name order as Zero to JupyterHub runs them.",
            "import json",
            "from traitlets.config import Config",
            "c = get_config()  # noqa: F821",
            f"c.merge(Config(json.loads(open({str(json_path)!r}).read())))",
        ]
        for name in sorted(snippets):
            script += [f"# hub.extraConfig.{name}", str(snippets[name])]
        write_atomic(self.config_path(ctx), "\n".join(script) + "\n", 0o600)
        write_atomic(ctx.home / "start-singleuser.sh", self._start_script(ctx), 0o700)
        self.log_dir(ctx).mkdir(exist_ok=True)
        register_redirect_uri(ctx.dependency("keycloak"), self.callback_url(ctx))

    def hub_config(self, ctx: ServiceContext, proxy: Path) -> dict[str, dict[str, object]]:
        """The stack's hub sections with the chart's sections over them, the admin service and
        its role kept, the user servers started by ``start-singleuser.sh``."""
        base = common_config(ctx, proxy)
        keycloak = ctx.dependency("keycloak")
        chart = z2jh_config(self.platform.values, keycloak, self.callback_url(ctx))
        chart["JupyterHub"]["load_roles"].append(ADMIN_ROLE)
        for section, settings in chart.items():
            base.setdefault(section, {}).update(settings)
        spawner = base["Spawner"]
        spawner["cmd"] = [str(ctx.home / "start-singleuser.sh")]
        environment = dict(spawner["environment"])  # type: ignore[call-overload]
        spawner["environment"] = {**environment, **self.platform.singleuser_env}
        return base

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """``JUPYTERHUB_CRYPT_KEY`` and the chart's ``hub.extraEnv`` (``OAUTH_CLIENT_SECRET``
        defaults to the Keycloak client's secret)."""
        secret = str(ctx.dependency("keycloak")["client_secret"])
        return {
            "JUPYTERHUB_CRYPT_KEY": crypt_key(ctx.secrets["crypt_seed"]),
            "OAUTH_CLIENT_SECRET": secret,
            **self.platform.hub_env,
        }

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``url`` (the proxy), ``api_url`` (the hub's API), ``api_token`` (the stack's admin
        service), ``log_dir`` (the user servers' logs) and ``users_dir`` (their homes)."""
        return {
            "url": f"http://{HOST}:{ctx.ports['http']}/",
            "api_url": f"http://{HOST}:{ctx.ports['hub']}/hub/api",
            "api_token": ctx.secrets["api_token"],
            "log_dir": str(self.log_dir(ctx)),
            "users_dir": str(ctx.home / "users"),
        }

    def _start_script(self, ctx: ServiceContext) -> str:
        """Like the image's ``start.sh``: hooks (``*.sh`` sourced, executables run), then the
        server; the interpreter's ``bin`` first on ``PATH``, as the image's Python is."""
        python = Path(sys.executable)
        hooks = self.platform.hooks_dir
        lines = [
            "#!/bin/sh",
            f'exec >>{shlex.quote(str(self.log_dir(ctx)))}/"$JUPYTERHUB_USER.log" 2>&1',
            f"PATH={shlex.quote(str(python.parent))}:$PATH; export PATH",
        ]
        if hooks is not None:
            lines += [
                f"for hook in {shlex.quote(str(hooks))}/*; do",
                '  case "$hook" in',
                '    *.sh) echo "start-singleuser: sourcing $hook"; . "$hook" ;;',
                '    *) if [ -x "$hook" ]; then',
                '         echo "start-singleuser: running $hook"; "$hook"',
                "       fi ;;",
                "  esac",
                "done",
            ]
        lines.append(f'exec {shlex.quote(str(python))} -m jupyterhub.singleuser "$@"')
        return "\n".join(lines) + "\n"
