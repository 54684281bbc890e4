"""Credentials the connectors send over HTTP: Basic, Bearer, and the JupyterHub user's token.

Every credential handed to a client is remembered by :mod:`carbon_sdk._redact`, so no error
message, log line or doctor row can show it, in any encoding it was sent in.

Inside a JupyterHub single-user server, :class:`HubToken` reads the user's OAuth access token
from the hub's ``auth_state`` (``GET {JUPYTERHUB_API_URL}/users/{name}``; the hub never fills
``auth_state`` on ``/user``). The hub must run with ``enable_auth_state`` and grant the scope
``admin:auth_state!user`` to both the ``user`` and the ``server`` roles: a server's token is cut
down to its user's scopes without a word.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from carbon_sdk._lazy import import_client
from carbon_sdk._redact import basic_credentials, remember
from carbon_sdk.errors import AuthFailed, ConfigurationError, ServiceError, Unreachable

if TYPE_CHECKING:
    import requests

HUB = "jupyterhub"
REFRESH_BEFORE_EXPIRY = 60.0  # seconds: a token this close to expiry is fetched again
UNKNOWN_EXPIRY_TTL = 300.0  # seconds to keep a token whose expiry cannot be read
_HUB_FIX = (
    "the hub needs enable_auth_state, an OAuth authenticator, and the scope "
    "admin:auth_state!user granted to both the user and the server roles"
)


def basic_header(user: str, password: str) -> str:
    """The value of a Basic ``Authorization`` header (remembered for redaction)."""
    pair = basic_credentials(user, password)
    remember(password, pair)
    return "Basic " + base64.b64encode(pair.encode()).decode()


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim (epoch seconds) of a JWT, read without verifying it; None otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def hub_access_token(
    *, connect_timeout: float = 10.0, request_timeout: float = 30.0, verify: bool | str = True
) -> str:
    """The user's current OAuth access token from JupyterHub's ``auth_state``.

    Reads ``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN`` and ``JUPYTERHUB_USER`` (all set by
    JupyterHub in a single-user server; without ``JUPYTERHUB_USER`` the name comes from
    ``GET /user``). Raises ConfigurationError (outside a hub, or no token in auth_state, naming
    what the hub needs), AuthFailed (401/403), Unreachable, or ServiceError.
    """
    api_url = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
    api_token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not (api_url and api_token):
        raise ConfigurationError(
            "JupyterHub token auth needs JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN (set by "
            "JupyterHub in single-user servers); outside a hub use a JWT or a password"
        )
    remember(api_token)
    requests_mod = import_client("requests", HUB)
    session = requests_mod.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE must not replace `verify`
    session.verify = verify
    session.headers["Authorization"] = f"token {api_token}"
    timeout = (connect_timeout, request_timeout)

    def get(path: str) -> dict[str, Any]:
        url = f"{api_url}{path}"
        try:
            response = session.get(url, timeout=timeout)
        except requests_mod.RequestException as exc:
            raise Unreachable(HUB, api_url, f"{type(exc).__name__} reading {url}") from None
        if response.status_code in (401, 403):
            raise AuthFailed(
                HUB, api_url, f"{response.status_code} reading {url} (check JUPYTERHUB_API_TOKEN)"
            )
        if not response.ok:
            raise ServiceError(HUB, api_url, f"{response.status_code} reading {url}")
        try:
            body = response.json()
        except ValueError:
            raise ServiceError(HUB, api_url, f"{url} did not answer JSON") from None
        return body if isinstance(body, dict) else {}

    with session:
        name = os.environ.get("JUPYTERHUB_USER") or str(get("/user").get("name") or "")
        if not name:
            raise ServiceError(HUB, api_url, "the hub did not say whose token this is")
        model = get(f"/users/{requests_mod.utils.quote(name, safe='')}")
    token = (model.get("auth_state") or {}).get("access_token")
    if not token:
        raise ConfigurationError(
            f"jupyterhub: the user {name!r} has no auth_state.access_token visible to this "
            f"token; {_HUB_FIX}"
        )
    remember(str(token))
    return str(token)


class CachedToken:
    """A token source that fetches again shortly before the token expires.

    ``fetch`` returns a fresh token; a JWT is kept until :data:`REFRESH_BEFORE_EXPIRY` seconds
    before its ``exp``, any other token for :data:`UNKNOWN_EXPIRY_TTL` seconds.
    :meth:`invalidate` forgets it (after a 401).
    """

    def __init__(self, fetch: Callable[[], str]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def __call__(self) -> str:
        with self._lock:
            now = time.time()
            if self._token is None or now >= self._renew_at:
                token = self._fetch()
                remember(token)
                expiry = token_expiry(token)
                self._renew_at = (
                    expiry - REFRESH_BEFORE_EXPIRY if expiry else now + UNKNOWN_EXPIRY_TTL
                )
                self._token = token
            return self._token

    def invalidate(self) -> None:
        """Forget the current token; the next call fetches a new one."""
        with self._lock:
            self._token = None


class BearerAuth:
    """A requests auth sending ``Authorization: Bearer <token>`` from a token source.

    With a :class:`CachedToken` and a bound session (:meth:`bind`), a 401 answer makes it fetch a
    fresh token once and resend the request through that session (the token may have been
    revoked or rotated before its expiry).
    """

    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token
        self._retried: weakref.WeakSet[requests.PreparedRequest] = weakref.WeakSet()
        self._session: requests.Session | None = None

    def bind(self, session: requests.Session) -> None:
        """The session that resends a request refused with 401 (once, with a fresh token);
        until one is bound, a 401 is returned as it is."""
        self._session = session

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._token()
        remember(token)
        if not token.isascii():  # HTTP headers are Latin-1 at best; a real token is ASCII
            raise ConfigurationError(
                "the bearer token (a JWT or the hub's access token) contains non-ASCII "
                "characters, so it cannot be a valid token: check where it is configured "
                "(carbon-sdk config show)"
            )
        request.headers["Authorization"] = f"Bearer {token}"
        if isinstance(self._token, CachedToken):
            request.register_hook("response", self._retry_on_401)
        return request

    def _retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        session = self._session
        if response.status_code != 401 or response.request in self._retried or session is None:
            return response
        assert isinstance(self._token, CachedToken)
        self._token.invalidate()
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {self._token()}"
        self._retried.add(retry)
        response.content  # noqa: B018 - release the connection before resending
        response.close()
        kwargs.pop("allow_redirects", None)  # the session's send takes it as a keyword
        sent: requests.Response = session.send(retry, allow_redirects=False, **kwargs)
        sent.history.append(response)
        return sent
