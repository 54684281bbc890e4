"""The dev stack hub's authenticator: a shared password, and an ``auth_state`` shaped like the
one OAuthenticator stores, so code reading it runs against the real hub unchanged.

Loaded inside the JupyterHub process only (it imports :mod:`jupyterhub`). The access token is
an HS256 JWT for the user signed with the ``jwt_key`` of the stack's ``trino_secure`` when that
service is running at login time, so ``trino_secure`` accepts it as that user; without
``trino_secure`` it is signed with the hub's own key. Tokens are re-minted by
:meth:`StackAuthenticator.refresh_user` before they expire, as OAuthenticator refreshes them.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from traitlets import Float, Unicode

from .state import StateDir
from .trino import mint_jwt

SCOPE = ["openid", "profile"]


class StackAuthenticator(SharedPasswordAuthenticator):  # type: ignore[misc]
    """Any user name with the shared ``user_password``; returns ``auth_state`` with
    ``access_token``, ``refresh_token``, ``id_token``, ``oauth_user``, ``scope`` and
    ``token_response``."""

    stack_home = Unicode(
        config=True, help="The stack's CARBON_DEV_HOME (where trino_secure's state is)."
    )
    hub_key = Unicode(config=True, help="Signing key when trino_secure is not running.")
    token_ttl = Float(3600.0, config=True, help="Seconds a minted access token is valid.")

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        """The shared-password check, plus a fresh ``auth_state`` for the user."""
        model: dict[str, Any] | None = await super().authenticate(handler, data)
        if model is None:
            return None
        return {**model, "auth_state": self.mint_auth_state(str(model["name"]))}

    async def refresh_user(self, user: Any, handler: Any = None) -> bool | dict[str, Any]:
        """New tokens once the stored access token is within ``token_ttl / 4`` of expiring."""
        state = await user.get_auth_state()
        expires = (state or {}).get("token_response", {}).get("expires_at", 0)
        if expires - time.time() > self.token_ttl / 4:
            return True
        return {"name": user.name, "auth_state": self.mint_auth_state(user.name)}

    def mint_auth_state(self, name: str) -> dict[str, Any]:
        """What GenericOAuthenticator keeps for ``name``, with locally minted tokens."""
        key = self._signing_key()
        access = mint_jwt(key, name, ttl=self.token_ttl)
        identity = mint_jwt(key, name, ttl=self.token_ttl)
        refresh = secrets.token_urlsafe(32)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "id_token": identity,
            "oauth_user": {"sub": name, "preferred_username": name, "name": name},
            "scope": SCOPE,
            "token_response": {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": int(self.token_ttl),
                "expires_at": int(time.time() + self.token_ttl),
                "refresh_token": refresh,
                "id_token": identity,
                "scope": " ".join(SCOPE),
            },
        }

    def _signing_key(self) -> str:
        """``trino_secure``'s ``jwt_key`` if it runs in this stack, else :attr:`hub_key`."""
        record = StateDir(Path(self.stack_home)).load("trino_secure") if self.stack_home else None
        key = (record.settings or {}).get("jwt_key") if record and record.pid else None
        return str(key or self.hub_key)
