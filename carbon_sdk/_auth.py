"""Credentials the SDK reads from its environment: the JupyterHub user's OAuth access token.

Inside a JupyterHub single-user server the hub sets ``JUPYTERHUB_API_URL``,
``JUPYTERHUB_API_TOKEN`` (the server's own token) and ``JUPYTERHUB_USER``. With
``enable_auth_state`` the hub keeps what the OAuth authenticator received at login (access,
refresh and id tokens) encrypted in the user's ``auth_state``. JupyterHub 5 returns
``auth_state`` only from ``GET /users/{name}``, never from ``GET /user`` (there it is always
``null``), and only to a token with the ``admin:auth_state`` scope for that user; a server's
token gets at most its user's scopes, so both the ``user`` and the ``server`` role need
``admin:auth_state!user``.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import urllib.parse

from carbon_sdk._redact import redact
from carbon_sdk.errors import AuthFailed, ConfigurationError, ServiceError, Unreachable

SERVICE = "jupyterhub"
_HUB_FIX = (
    "the hub needs enable_auth_state = True and the scope admin:auth_state!user on both the "
    "user and the server roles (load_roles), and an authenticator that stores access_token"
)


def hub_access_token(
    *, connect_timeout: float = 10.0, request_timeout: float = 30.0, verify: bool | str = True
) -> str:
    """The user's current OAuth access token from JupyterHub's auth_state: GET
    {JUPYTERHUB_API_URL}/users/{JUPYTERHUB_USER} with header Authorization: token
    {JUPYTERHUB_API_TOKEN} (user name from JUPYTERHUB_USER, else from GET /user).

    Args:
        connect_timeout: seconds to wait for the TCP (and TLS) connection.
        request_timeout: seconds to wait for each response once connected.
        verify: for an https API URL: True checks the certificate against the system CAs,
            a path uses that CA bundle, False does not check.

    Raises:
        ConfigurationError: the variables are missing, or the answer has no
            auth_state.access_token (the hub needs enable_auth_state and the
            admin:auth_state!user scope on the user and server roles).
        AuthFailed: the hub refused the API token (401/403).
        Unreachable: the hub could not be reached (refused, unresolvable, timed out).
        ServiceError: any other status or an unreadable answer.

    The API token never appears in a message.
    """
    api_url = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    api_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not (api_url and api_token):
        raise ConfigurationError(
            "jupyterhub: needs JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN (JupyterHub sets them "
            "in single-user servers); outside a hub use another authentication"
        )
    hub = _Hub(api_url, api_token, connect_timeout, request_timeout, verify)
    name = os.environ.get("JUPYTERHUB_USER") or str(hub.get("/user").get("name") or "")
    if not name:
        raise ServiceError(SERVICE, api_url, "GET /user answered without a user name")
    model = hub.get(f"/users/{urllib.parse.quote(name, safe='')}")
    auth_state = model.get("auth_state")
    token = auth_state.get("access_token") if isinstance(auth_state, dict) else None
    if not token:
        raise ConfigurationError(
            f"jupyterhub: the user model of {name!r} has no auth_state.access_token: {_HUB_FIX}"
        )
    return str(token)


class _Hub:
    """GET requests to the hub's REST API with the API token; JSON object answers."""

    def __init__(
        self, api_url: str, token: str, connect: float, request: float, verify: bool | str
    ) -> None:
        self.api_url, self._token = api_url, token
        self._connect, self._request = connect, request
        parts = urllib.parse.urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"jupyterhub: JUPYTERHUB_API_URL={api_url!r} is not an http(s) URL"
            )
        self._parts = parts
        self._context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            cafile = verify if isinstance(verify, str) else None
            self._context = ssl.create_default_context(cafile=cafile)
            if verify is False:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE

    def get(self, path: str) -> dict[str, object]:
        """``GET <api_url><path>`` and the decoded JSON object; errors as documented above."""
        conn = self._connection()
        try:
            conn.connect()
            if conn.sock is not None:
                conn.sock.settimeout(self._request)
            conn.request(
                "GET",
                self._parts.path + path,
                headers={"Authorization": f"token {self._token}", "Accept": "application/json"},
            )
            response = conn.getresponse()
            status, body = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            reason = redact(str(exc) or type(exc).__name__, [self._token])
            raise Unreachable(SERVICE, self.api_url, f"GET {path}: {reason}") from None
        finally:
            conn.close()
        if status in (401, 403):
            raise AuthFailed(
                SERVICE, self.api_url, f"{status} on GET {path}: JUPYTERHUB_API_TOKEN was refused"
            )
        if status != 200:
            raise ServiceError(SERVICE, self.api_url, f"{status} on GET {path}")
        try:
            model = json.loads(body)
        except ValueError:
            model = None
        if not isinstance(model, dict):
            raise ServiceError(SERVICE, self.api_url, f"GET {path} did not answer a JSON object")
        return model

    def _connection(self) -> http.client.HTTPConnection:
        host, port = self._parts.hostname or "", self._parts.port
        if self._context is not None:
            return http.client.HTTPSConnection(
                host, port, timeout=self._connect, context=self._context
            )
        return http.client.HTTPConnection(host, port, timeout=self._connect)
