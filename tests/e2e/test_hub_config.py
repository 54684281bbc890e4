"""The e2e hub's configuration is the chart's (no server): every ``hub.config`` setting as the
chart renders it, only the identity provider's endpoints replaced by Keycloak's."""

from __future__ import annotations

from chartlib import merged_values

from carbon_sdk.dev.jupyterhub_oidc import PROVIDER_KEYS, z2jh_config
from carbon_sdk.dev.keycloak import endpoints

CALLBACK = "http://127.0.0.1:8000/hub/oauth_callback"


def test_chart_settings_kept_provider_replaced() -> None:
    values = merged_values({})["jupyterhub"]
    keycloak = {**endpoints("http://127.0.0.1:8080"), "client_id": "jupyterhub"}
    config = z2jh_config(values, keycloak, CALLBACK)
    chart = values["hub"]["config"]
    for section, settings in chart.items():
        for key, value in settings.items():
            if not (section == "GenericOAuthenticator" and key in PROVIDER_KEYS):
                assert config[section][key] == value, (section, key)
    oauth = config["GenericOAuthenticator"]
    assert oauth["authorize_url"] == keycloak["authorize_url"]
    assert oauth["token_url"] == keycloak["token_url"]
    assert oauth["userdata_url"] == keycloak["userinfo_url"]
    assert oauth["client_id"] == "jupyterhub"
    assert oauth["oauth_callback_url"] == CALLBACK
    assert "client_secret" not in oauth  # from $OAUTH_CLIENT_SECRET, as on the platform
    assert set(chart["GenericOAuthenticator"]) >= set(PROVIDER_KEYS)


def test_roles_and_prometheus_auth_follow_the_chart() -> None:
    values = merged_values({})["jupyterhub"]
    config = z2jh_config(values, {**endpoints("http://x"), "client_id": "c"}, CALLBACK)
    roles = {r["name"]: r for r in config["JupyterHub"]["load_roles"]}
    assert set(roles) == set(values["hub"]["loadRoles"])
    assert "admin:auth_state!user" in roles["server"]["scopes"]
    assert "admin:auth_state!user" in roles["user"]["scopes"]
    assert config["JupyterHub"]["authenticate_prometheus"] is True
