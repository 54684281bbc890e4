"""JupyterHub for the local stack: the hub from PyPI (``carbon-sdk[dev]``), its
``configurable-http-proxy`` from npm, single-user servers as local processes.

The hub runs ``python -m jupyterhub`` with a generated ``jupyterhub_config.json`` (one function,
:func:`hub_config`, so swapping the authenticator is a local change). Everything binds
127.0.0.1: the proxy's public port (``http``), the hub (``hub``), the proxy's API
(``proxy_api``), and each single-user server on a random port. ``enable_auth_state`` is on, with
``JUPYTERHUB_CRYPT_KEY`` derived from a generated secret, and ``admin:auth_state!user`` is granted
to both the ``user`` and the ``server`` role: a server's token is cut down to its user's scopes,
so without the grant on both, ``GET /hub/api/users/{name}`` from a single-user server answers
without ``auth_state``. Users log in with any name and the stack's shared password
(:class:`~carbon_sdk.dev.hub_auth.StackAuthenticator`).

``configurable-http-proxy`` is installed once with the machine's ``npm`` into
``$XDG_CACHE_HOME/carbon-sdk/chp/<version>`` (a temporary prefix renamed at the end).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from .ports import HOST
from .service import DevStackError, Service, ServiceContext, http_ok

CHP_VERSION = "5.3.0"
CHP_CACHE_ENV = "CARBON_DEV_CHP_CACHE"
ADMIN_SERVICE = "carbon-dev"
AUTHENTICATOR = "carbon_sdk.dev.hub_auth.StackAuthenticator"
AUTH_STATE_SCOPE = "admin:auth_state!user"
# The defaults of JupyterHub 5's `user` and `server` roles (jupyterhub.roles.get_default_roles).
USER_SCOPES = ("self",)
SERVER_SCOPES = ("users:activity!user", "access:servers!server")
# The stack's admin token (settings `api_token`): users, servers, their spawner state, tokens.
ADMIN_SCOPES = ("admin:users", "admin:servers", "admin:server_state", "admin:auth_state", "tokens")
SPAWN_TIMEOUT = 180  # seconds a user server may take to start and answer
ADMIN_ROLE = {"name": "carbon-dev-admin", "scopes": ADMIN_SCOPES, "services": [ADMIN_SERVICE]}


def chp_cache_dir() -> Path:
    """``$CARBON_DEV_CHP_CACHE``, else ``$XDG_CACHE_HOME/carbon-sdk/chp/<version>``."""
    if explicit := os.environ.get(CHP_CACHE_ENV):
        return Path(explicit).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "carbon-sdk" / "chp" / CHP_VERSION


def _chp_bin(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "configurable-http-proxy"


def ensure_proxy(ctx: ServiceContext, cache: Path | None = None) -> Path:
    """The ``configurable-http-proxy`` script, installing it with ``npm`` first if needed."""
    prefix = cache or chp_cache_dir()
    if _chp_bin(prefix).is_file():
        return _chp_bin(prefix)
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise DevStackError(
            "jupyterhub needs configurable-http-proxy from npm, but `node`/`npm` is not on PATH."
            " Install Node.js 20 or newer with npm (Debian: apt-get install nodejs npm)."
        )
    prefix.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=prefix.parent, prefix=f".{prefix.name}-"))
    try:
        ctx.run(
            [
                npm,
                "install",
                "--prefix",
                str(work),
                "--no-audit",
                "--no-fund",
                "--no-update-notifier",
                "--loglevel=error",
                f"configurable-http-proxy@{CHP_VERSION}",
            ],
            cwd=work,
            timeout=600.0,
        )
        if not _chp_bin(work).is_file():
            raise DevStackError(f"{ctx.name}: npm did not install configurable-http-proxy")
        try:
            work.rename(prefix)
        except OSError:  # another stack finished the same install first
            if not _chp_bin(prefix).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _chp_bin(prefix)


def crypt_key(seed: str) -> str:
    """``JUPYTERHUB_CRYPT_KEY`` (32 bytes, hex) derived from the generated secret ``seed``."""
    return hashlib.sha256(seed.encode()).hexdigest()


def hub_config(ctx: ServiceContext, proxy: Path) -> dict[str, dict[str, object]]:
    """The hub's traitlets configuration, by class: :func:`common_config` plus the roles and
    the authenticator (replace its section to change how users log in)."""
    config = common_config(ctx, proxy)
    config["JupyterHub"]["authenticator_class"] = AUTHENTICATOR
    config["JupyterHub"]["load_roles"] = [
        {"name": "user", "scopes": [*USER_SCOPES, AUTH_STATE_SCOPE]},
        {"name": "server", "scopes": [*SERVER_SCOPES, AUTH_STATE_SCOPE]},
        ADMIN_ROLE,
    ]
    config["Authenticator"] = {"enable_auth_state": True}
    config["StackAuthenticator"] = {
        "user_password": ctx.secrets["password"],
        "allow_all": True,
        "stack_home": str(ctx.home.parent),
        "hub_key": ctx.secrets["token_key"],
    }
    return config


def common_config(ctx: ServiceContext, proxy: Path) -> dict[str, dict[str, object]]:
    """What every stack hub has: ports, database, proxy, the local-process spawner, the admin
    service (its role is :data:`ADMIN_ROLE`)."""
    return {
        "JupyterHub": {
            "ip": HOST,
            "port": ctx.ports["http"],
            "hub_ip": HOST,
            "hub_port": ctx.ports["hub"],
            "db_url": f"sqlite:///{ctx.home / 'jupyterhub.sqlite'}",
            "cookie_secret_file": str(ctx.home / "jupyterhub_cookie_secret"),
            "spawner_class": "jupyterhub.spawner.SimpleLocalProcessSpawner",
            "services": [{"name": ADMIN_SERVICE, "api_token": ctx.secrets["api_token"]}],
        },
        "ConfigurableHTTPProxy": {
            "command": [str(proxy)],
            "api_url": f"http://{HOST}:{ctx.ports['proxy_api']}",
            "should_start": True,
        },
        "Spawner": {
            "ip": HOST,
            "cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
            # in the hub's process group, so `down` and the supervisor's checks see them
            "popen_kwargs": {"start_new_session": False},
            "environment": {"JUPYTER_CONFIG_DIR": str(ctx.home / "singleuser")},
            # a loaded machine (and a before-notebook hook) can take longer than the default 30 s
            "http_timeout": SPAWN_TIMEOUT,
            "start_timeout": SPAWN_TIMEOUT,
        },
        "SimpleLocalProcessSpawner": {"home_dir_template": str(ctx.home / "users" / "{username}")},
    }


# The single-user servers' Jupyter configuration: no JupyterLab news feed or update check (both
# fetch from the internet), and allowed to run as root (the stack may run as root in CI).
SINGLEUSER_CONFIG: dict[str, dict[str, object]] = {
    "ServerApp": {"allow_root": True},
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
    },
}


class JupyterHubService(Service):
    """A JupyterHub whose users log in with a shared password and carry an OAuth-like
    ``auth_state`` (see :mod:`carbon_sdk.dev.hub_auth`)."""

    name = "jupyterhub"
    ports: ClassVar[tuple[str, ...]] = ("http", "hub", "proxy_api")
    main_port = "http"
    secrets: ClassVar[tuple[str, ...]] = ("password", "crypt_seed", "api_token", "token_key")
    default = False  # only when named: `carbon-sdk dev up jupyterhub`
    ready_timeout = 60.0
    stop_timeout = 20.0

    def sections_path(self, ctx: ServiceContext) -> Path:
        """The generated ``jupyterhub_config.json`` (mode 0600: it holds secrets)."""
        return ctx.home / "jupyterhub_config.json"

    def config_path(self, ctx: ServiceContext) -> Path:
        """The file ``jupyterhub -f`` loads (here: the JSON sections themselves)."""
        return self.sections_path(ctx)

    def prepare(self, ctx: ServiceContext) -> None:
        """Install the proxy if needed and write the hub's and the single-user servers'
        configuration (on every start, so it follows the allocated ports)."""
        write_json(self.sections_path(ctx), self.hub_config(ctx, ensure_proxy(ctx)))
        write_json(ctx.home / "singleuser" / "jupyter_server_config.json", SINGLEUSER_CONFIG)

    def hub_config(self, ctx: ServiceContext, proxy: Path) -> dict[str, dict[str, object]]:
        """The hub's traitlets configuration (subclasses change the authenticator here)."""
        return hub_config(ctx, proxy)

    def command(self, ctx: ServiceContext) -> list[str]:
        """The hub in the foreground; it starts the proxy and stops it (and the servers) on exit."""
        return [sys.executable, "-m", "jupyterhub", "-f", str(self.config_path(ctx))]

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """``JUPYTERHUB_CRYPT_KEY``, which encrypts ``auth_state`` in the hub's database."""
        return {"JUPYTERHUB_CRYPT_KEY": crypt_key(ctx.secrets["crypt_seed"])}

    def probe(self, ctx: ServiceContext) -> bool:
        """The hub answers ``GET /hub/api/`` directly, then through the proxy (public port)."""
        return http_ok(f"http://{HOST}:{ctx.ports['hub']}/hub/api/") and http_ok(
            f"http://{HOST}:{ctx.ports['http']}/hub/api/"
        )

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``url`` (the proxy), ``api_url`` (the hub's API as servers see it), ``password``
        (the shared login password) and ``api_token`` (the stack's admin service token)."""
        return {
            "url": f"http://{HOST}:{ctx.ports['http']}/",
            "api_url": f"http://{HOST}:{ctx.ports['hub']}/hub/api",
            "password": ctx.secrets["password"],
            "api_token": ctx.secrets["api_token"],
        }


def write_json(path: Path, values: Mapping[str, object]) -> None:
    """Write ``values`` as JSON, mode 0600 (the hub's configuration holds secrets)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(values, out, indent=2)
