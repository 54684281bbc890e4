"""Keycloak for the local stack: a real OpenID Connect provider standing in for the platform's
(Cloudflare Access), from Maven Central (``org.keycloak:keycloak-quarkus-dist:<version>:zip``).

``carbon-sdk dev up keycloak`` (not started by a bare ``dev up``) runs Keycloak on 127.0.0.1
over plain HTTP, with its file database (``dev-file``) and the realm :data:`REALM` imported
from a generated file (``data/import``):

* a confidential client ``jupyterhub`` (the hub's OAuth client; its secret is generated per
  stack) with an audience mapper, so access tokens carry ``aud: jupyterhub``, which the stack's
  JWT-validating Trino requires; the hub registers its exact redirect URI with
  :func:`register_redirect_uri` once its port is known;
* a public client ``carbon-dev`` for the resource-owner password grant (:func:`password_grant`),
  with the same audience mapper: the stack's own probes and tools get tokens without a browser;
* the users :data:`USERS` (``alice``, ``bob``) and the probe user ``carbon``, each with an email,
  first and last name (else Keycloak may ask to complete the profile mid-login) and a password
  generated per stack.

The distribution is unpacked and built once (``kc.sh build`` with :data:`BUILD_OPTIONS`) into
the cache entry ``~/.cache/carbon-sdk/keycloak/<version>``; each stack runs it with
``start --optimized`` from a directory of its own (``bin`` and ``conf`` copied, ``lib``,
``providers`` and ``themes`` linked to the cache, ``data`` its own), so no stack repeats the
~20-30 s build. (``start-dev`` cannot start from a prior build: it builds again.)
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any, ClassVar

from carbon_sdk._files import write_atomic

from . import maven
from .java import find_java_home
from .ports import HOST
from .service import DevStackError, Service, ServiceContext, http_ok

KEYCLOAK_VERSION = "26.4.5"
MIN_JAVA = 17
CACHE_ENV = "CARBON_DEV_KEYCLOAK_CACHE"
REALM = "carbon"
CLIENT_ID = "jupyterhub"
DEV_CLIENT_ID = "carbon-dev"
ADMIN_USER = "admin"
USERS = ("alice", "bob")
PROBE_USER = "carbon"
EMAIL_DOMAIN = "example.com"
TOKEN_LIFESPAN = 1800  # seconds; the hub refreshes tokens older than its auth_refresh_age anyway
HEAP = "512m"
# Build-time options: the cached build is made with them and the server starts `--optimized`
# (`start-dev` cannot use a prior build: it re-augments on every fresh copy, ~20-30 s).
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=true")
LINKED = ("lib", "providers", "themes")
TIMEOUT = 30.0


def cache_dir() -> Path:
    """``$CARBON_DEV_KEYCLOAK_CACHE``, else ``$XDG_CACHE_HOME/carbon-sdk/keycloak/<version>``."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit).expanduser().absolute()
    return maven.cache_dir("keycloak", KEYCLOAK_VERSION)


def artifact() -> maven.Artifact:
    """The server distribution on Maven Central."""
    return maven.Artifact("org.keycloak", "keycloak-quarkus-dist", KEYCLOAK_VERSION, "zip")


def java_home() -> Path:
    """A JDK new enough for Keycloak (see :func:`carbon_sdk.dev.java.find_java_home`)."""
    return find_java_home(MIN_JAVA, purpose=f"Keycloak {KEYCLOAK_VERSION}")


def ensure_server(ctx: ServiceContext) -> Path:
    """The unpacked and built distribution in the cache (fetched and built first if needed)."""
    sources = [str(artifact()), *BUILD_OPTIONS]
    return maven.ensure_cached(ctx, cache_dir(), sources, lambda target: _build(ctx, target))


def _build(ctx: ServiceContext, server: Path) -> None:
    """Fetch the zip, unpack it into ``server`` and run ``kc.sh build`` for the dev profile."""
    (archive,) = maven.copy_artifacts(ctx, [artifact()], server.parent / "archives")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(server.parent)
    (server.parent / f"keycloak-{KEYCLOAK_VERSION}").rename(server)
    archive.unlink()
    for script in (server / "bin").glob("*.sh"):
        script.chmod(0o755)  # zip entries may lose the executable bit
    ctx.run(
        [str(server / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
        env={**os.environ, "JAVA_HOME": str(java_home())},
        cwd=server,
        timeout=600.0,
    )


def _assemble(built: Path, target: Path) -> None:
    """This stack's server directory: ``bin``/``conf`` copied, the large read-only directories
    linked to the cached build, ``data`` of its own (the H2 database, the realm import)."""
    for name in LINKED:
        link = target / name
        if link.is_symlink() and link.resolve() == (built / name).resolve():
            continue
        if link.is_symlink() or link.exists():
            shutil.rmtree(link) if link.is_dir() and not link.is_symlink() else link.unlink()
        target.mkdir(parents=True, exist_ok=True)
        link.symlink_to(built / name, target_is_directory=True)
    for name in ("bin", "conf"):
        shutil.rmtree(target / name, ignore_errors=True)
        shutil.copytree(built / name, target / name, symlinks=True)
    (target / "data" / "import").mkdir(parents=True, exist_ok=True)


def email(user: str) -> str:
    """The email of a realm user (the chart's ``username_claim`` is ``email``)."""
    return f"{user}@{EMAIL_DOMAIN}"


def _user(name: str, password: str) -> dict[str, object]:
    return {
        "username": name,
        "enabled": True,
        "email": email(name),
        "emailVerified": True,
        "firstName": name.capitalize(),
        "lastName": "Carbon",
        "credentials": [{"type": "password", "value": password, "temporary": False}],
    }


def _audience_mapper() -> dict[str, object]:
    """Adds ``aud: jupyterhub`` to access tokens (Keycloak's default audience is ``account``)."""
    return {
        "name": f"audience-{CLIENT_ID}",
        "protocol": "openid-connect",
        "protocolMapper": "oidc-audience-mapper",
        "config": {
            "included.client.audience": CLIENT_ID,
            "access.token.claim": "true",
            "id.token.claim": "false",
            "introspection.token.claim": "true",
        },
    }


def realm(ctx: ServiceContext) -> dict[str, object]:
    """The realm import: clients ``jupyterhub`` and ``carbon-dev``, the users."""
    users = [_user(name, ctx.secrets[f"{name}_password"]) for name in (*USERS, PROBE_USER)]
    return {
        "realm": REALM,
        "enabled": True,
        "sslRequired": "none",
        "accessTokenLifespan": TOKEN_LIFESPAN,
        "clients": [
            {
                "clientId": CLIENT_ID,
                "name": "JupyterHub",
                "enabled": True,
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": ctx.secrets["client_secret"],
                "standardFlowEnabled": True,
                "directAccessGrantsEnabled": False,
                "redirectUris": [],  # the hub registers its own (register_redirect_uri)
                "protocolMappers": [_audience_mapper()],
            },
            {
                "clientId": DEV_CLIENT_ID,
                "name": "carbon-sdk dev stack",
                "enabled": True,
                "publicClient": True,
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": True,
                "protocolMappers": [_audience_mapper()],
            },
        ],
        "users": users,
    }


def endpoints(base_url: str) -> dict[str, str]:
    """The realm's OpenID Connect endpoints under ``base_url`` (``http://127.0.0.1:<port>``)."""
    issuer = f"{base_url.rstrip('/')}/realms/{REALM}"
    oidc = f"{issuer}/protocol/openid-connect"
    return {
        "issuer": issuer,
        "authorize_url": f"{oidc}/auth",
        "token_url": f"{oidc}/token",
        "userinfo_url": f"{oidc}/userinfo",
        "jwks_url": f"{oidc}/certs",
    }


class KeycloakService(Service):
    """Keycloak (H2 file database, local cache, plain HTTP) with the generated realm."""

    name = "keycloak"
    ports: ClassVar[tuple[str, ...]] = ("http", "management")
    main_port = "http"
    secrets = (
        "admin_password",
        "client_secret",
        *(f"{user}_password" for user in (*USERS, PROBE_USER)),
    )
    default = False  # ~0.5 GB and a JVM: only when named (`carbon-sdk dev up keycloak`)
    ready_timeout = 240.0
    stop_timeout = 30.0

    def server_dir(self, ctx: ServiceContext) -> Path:
        """This stack's server directory (see :func:`_assemble`)."""
        return ctx.home / "server"

    def prepare(self, ctx: ServiceContext) -> None:
        """Fetch and build the server if needed, assemble this stack's copy, write the realm."""
        java_home()
        server = self.server_dir(ctx)
        _assemble(ensure_server(ctx), server)
        write_atomic(
            server / "data" / "import" / f"{REALM}-realm.json", json.dumps(realm(ctx)), 0o600
        )

    def command(self, ctx: ServiceContext) -> list[str]:
        """``kc.sh start --optimized`` (the cached build) over plain HTTP on 127.0.0.1,
        importing the realm (skipped once it exists)."""
        return [
            str(self.server_dir(ctx) / "bin" / "kc.sh"),
            "start",
            "--optimized",
            "--http-enabled=true",
            f"--http-host={HOST}",
            f"--http-port={ctx.ports['http']}",
            f"--http-management-port={ctx.ports['management']}",
            "--hostname-strict=false",
            "--cache=local",
            "--import-realm",
        ]

    def env(self, ctx: ServiceContext) -> dict[str, str]:
        """The JDK, the heap, the bootstrap admin (used once, when the master realm is made)."""
        return {
            "JAVA_HOME": str(java_home()),
            "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{HEAP}",
            # JBoss threads' thread-local reset needs this on Java 24+ (else IllegalAccessError
            # in executor threads); harmless on 17
            "JAVA_OPTS_APPEND": "--add-opens=java.base/java.lang=ALL-UNNAMED",
            "KC_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
            "KC_BOOTSTRAP_ADMIN_PASSWORD": ctx.secrets["admin_password"],
            "KC_MANAGEMENT_HTTP_HOST": HOST,
        }

    def probe(self, ctx: ServiceContext) -> bool:
        """``/health/ready`` on the management port, then the realm's discovery document."""
        base = f"http://{HOST}:{ctx.ports['http']}"
        return http_ok(f"http://{HOST}:{ctx.ports['management']}/health/ready") and http_ok(
            f"{endpoints(base)['issuer']}/.well-known/openid-configuration"
        )

    def settings(self, ctx: ServiceContext) -> dict[str, object]:
        """``url``, ``realm``, the OIDC endpoints, ``client_id``/``client_secret`` (the hub's),
        ``dev_client_id``, the admin's and each user's password (``<user>_password``)."""
        base = f"http://{HOST}:{ctx.ports['http']}"
        passwords = {f"{u}_password": ctx.secrets[f"{u}_password"] for u in (*USERS, PROBE_USER)}
        return {
            "url": base,
            "realm": REALM,
            **endpoints(base),
            "client_id": CLIENT_ID,
            "client_secret": ctx.secrets["client_secret"],
            "dev_client_id": DEV_CLIENT_ID,
            "admin_user": ADMIN_USER,
            "admin_password": ctx.secrets["admin_password"],
            **passwords,
        }


# -- talking to the running server ---------------------------------------------------------


def _post_form(url: str, form: dict[str, str], headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - the stack's own http URL
        url, urllib.parse.urlencode(form).encode(), headers or {}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
        return json.load(response)


def password_grant(keycloak: dict[str, object], user: str) -> str:
    """An access token for the realm user ``user`` (public client ``carbon-dev``)."""
    document = _post_form(
        str(keycloak["token_url"]),
        {
            "grant_type": "password",
            "client_id": str(keycloak["dev_client_id"]),
            "username": user,
            "password": str(keycloak[f"{user}_password"]),
            "scope": "openid email profile",
        },
    )
    return str(document["access_token"])


def register_redirect_uri(keycloak: dict[str, object], uri: str) -> None:
    """Make ``uri`` the only redirect URI of the ``jupyterhub`` client (admin REST API)."""
    base = str(keycloak["url"])
    admin = _post_form(
        f"{base}/realms/master/protocol/openid-connect/token",
        {
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": str(keycloak["admin_user"]),
            "password": str(keycloak["admin_password"]),
        },
    )
    headers = {"Authorization": f"Bearer {admin['access_token']}"}
    clients_url = f"{base}/admin/realms/{keycloak['realm']}/clients"
    query = urllib.parse.urlencode({"clientId": keycloak["client_id"]})
    lookup = urllib.request.Request(f"{clients_url}?{query}", headers=headers)  # noqa: S310
    with urllib.request.urlopen(lookup, timeout=TIMEOUT) as response:  # noqa: S310
        found = json.load(response)
    if not found:
        raise DevStackError(f"keycloak: realm {keycloak['realm']} has no client {CLIENT_ID}")
    client = {**found[0], "redirectUris": [uri]}
    update = urllib.request.Request(  # noqa: S310 - the stack's own http URL
        f"{clients_url}/{client['id']}",
        json.dumps(client).encode(),
        {**headers, "Content-Type": "application/json"},
        method="PUT",
    )
    with urllib.request.urlopen(update, timeout=TIMEOUT):  # noqa: S310
        pass
