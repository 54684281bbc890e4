"""The resolution chain: precedence, profiles, secret files, aliases, errors, provenance."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import carbon_sdk
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.settings import write_profile
from carbon_sdk.settings.carbon import configure, get_settings, reload


def write_yaml(path: Path, data: object) -> None:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")


def secret(home: Path, name: str, value: str) -> Path:
    (home / "secrets").mkdir(exist_ok=True)
    path = home / "secrets" / name
    path.write_text(value + "\n", encoding="utf-8")
    return path


# Layers from lowest to highest; each test case enables layers up to one and expects it to win.
LAYERS = ["default", "system", "user", "profile", "secret", "alias", "env", "argument"]


@pytest.mark.parametrize("top", LAYERS)
def test_each_layer_beats_every_lower_one(
    top: str, isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = isolated_config
    enabled = LAYERS[: LAYERS.index(top) + 1]
    system: dict[str, object] = {}
    user: dict[str, object] = {}
    if "system" in enabled:
        system["postgres"] = {"port": 1001}
    if "user" in enabled:
        user["postgres"] = {"port": 1002}
    if "profile" in enabled:
        user["profiles"] = {"lab": {"postgres": {"port": 1003}}}
        monkeypatch.setenv("CARBON_PROFILE", "lab")
    write_yaml(home / "system.yaml", system)
    write_yaml(home / "user.yaml", user)
    if "secret" in enabled:
        secret(home, "postgres__port", "1004")
    if "alias" in enabled:
        monkeypatch.setenv("PGPORT", "1005")
    if "env" in enabled:
        monkeypatch.setenv("CARBON_POSTGRES__PORT", "1006")
    overrides = {"port": 1007} if "argument" in enabled else {}

    settings = reload().service("postgres", **overrides)

    expected_port = {"default": 5432, **{name: 1000 + i for i, name in enumerate(LAYERS) if i}}
    assert settings.port == expected_port[top]  # type: ignore[attr-defined]
    origin = str(settings.origin("port"))
    expected_origin = {
        "default": "default",
        "system": f"file {home / 'system.yaml'}:postgres.port",
        "user": f"file {home / 'user.yaml'}:postgres.port",
        "profile": f"file {home / 'user.yaml'}:profiles.lab.postgres.port",
        "secret": f"secret {home / 'secrets' / 'postgres__port'}",
        "alias": "env PGPORT",
        "env": "env CARBON_POSTGRES__PORT",
        "argument": "argument",
    }
    assert origin == expected_origin[top]


def test_profile_in_system_file_beats_user_base(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(isolated_config / "user.yaml", {"postgres": {"host": "user-base"}})
    write_yaml(
        isolated_config / "system.yaml", {"profiles": {"lab": {"postgres": {"host": "sys-lab"}}}}
    )
    monkeypatch.setenv("CARBON_PROFILE", "lab")
    assert reload().service("postgres").host == "sys-lab"  # type: ignore[attr-defined]


def test_unknown_profile_names_files_and_known_profiles(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(isolated_config / "user.yaml", {"profiles": {"dev": {}, "prod": {}}})
    monkeypatch.setenv("CARBON_PROFILE", "stagin")
    with pytest.raises(ConfigurationError) as info:
        reload()
    message = str(info.value)
    assert "CARBON_PROFILE='stagin'" in message
    assert "dev, prod" in message
    assert str(isolated_config / "user.yaml") in message


def test_secret_file_is_read_stripped_and_stays_secret(isolated_config: Path) -> None:
    path = secret(isolated_config, "postgres__password", "s3cr3t-canary")
    settings = reload().postgres
    assert settings.secret("password") == "s3cr3t-canary"
    assert str(settings.origin("password")) == f"secret {path}"
    assert "s3cr3t-canary" not in repr(settings)
    assert "s3cr3t-canary" not in str(settings)
    assert ("password", "***", f"secret {path}") in list(settings.rows())


def test_alias_variables_of_native_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "db.example")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:9000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://s3-specific:9000")
    settings = reload()
    assert settings.postgres.host == "db.example"
    assert str(settings.postgres.origin("host")) == "env PGHOST"
    assert settings.s3.access_key_id == "AKIAEXAMPLE"
    # the service-specific standard variable wins over the generic one, as in botocore
    assert settings.s3.endpoint_url == "http://s3-specific:9000"


def test_missing_setting_error_names_every_way_to_set_it(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_yaml(isolated_config / "user.yaml", {"profiles": {"lab": {}}})
    monkeypatch.setenv("CARBON_PROFILE", "lab")
    settings = reload().postgres
    assert not settings.configured
    with pytest.raises(ConfigurationError) as info:
        settings.require()
    message = str(info.value)
    assert "postgres.host, postgres.user not set (profile: lab)" in message
    assert "env CARBON_POSTGRES__HOST (or PGHOST)" in message
    assert f"secret file {isolated_config / 'secrets' / 'postgres__host'}" in message
    assert "config key profiles.lab.postgres.host (or postgres.host)" in message
    assert "carbon_sdk.configure(postgres={'host': ...})" in message


def test_invalid_value_names_field_and_source_without_pydantic_noise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARBON_POSTGRES__PORT", "fivefourthreetwo")
    with pytest.raises(ConfigurationError) as info:
        reload().postgres  # noqa: B018
    message = str(info.value)
    assert "postgres.port" in message
    assert "env CARBON_POSTGRES__PORT" in message
    assert "pydantic" not in message.lower()
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_invalid_secret_value_is_not_echoed(isolated_config: Path) -> None:
    # a secret file with a value of the wrong type: the error must not show the value
    secret(isolated_config, "postgres__port", "canary-not-a-port")
    with pytest.raises(ConfigurationError) as info:
        reload().postgres  # noqa: B018
    assert "canary-not-a-port" not in str(info.value)
    assert "postgres__port" in str(info.value)


def test_one_broken_section_does_not_hide_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_POSTGRES__PORT", "nope")
    monkeypatch.setenv("CARBON_S3__REGION", "eu-west-1")
    settings = reload()
    assert settings.s3.region == "eu-west-1"
    with pytest.raises(ConfigurationError):
        settings.postgres  # noqa: B018


def test_malformed_config_file_names_file_and_line(isolated_config: Path) -> None:
    (isolated_config / "system.yaml").write_text("postgres:\n  host: [unclosed\n", "utf-8")
    with pytest.raises(ConfigurationError, match=r"system\.yaml:\d+"):
        reload()


def test_config_file_section_must_be_a_mapping(isolated_config: Path) -> None:
    write_yaml(isolated_config / "system.yaml", {"postgres": "db.example"})
    with pytest.raises(ConfigurationError, match="'postgres' must be a mapping"):
        reload().postgres  # noqa: B018


def test_configure_merges_and_wins_reload_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_POSTGRES__HOST", "from-env")
    configure(postgres={"host": "from-cell"})
    configure(postgres={"user": "alice"}, s3={"region": "eu-central-1"})
    settings = carbon_sdk.get_settings()
    assert settings.postgres.host == "from-cell"
    assert settings.postgres.user == "alice"
    assert str(settings.postgres.origin("host")) == "argument"
    assert settings.s3.region == "eu-central-1"
    assert reload().postgres.host == "from-env"


def test_configure_rejects_unknown_service() -> None:
    with pytest.raises(
        ConfigurationError, match=r"did you mean `postgres`.*known services: postgres"
    ):
        configure(postgress={"host": "x"})


def test_settings_are_cached_until_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert first.postgres.host is None  # resolved on first access, then cached
    monkeypatch.setenv("CARBON_POSTGRES__HOST", "later")
    assert get_settings() is first
    assert first.postgres.host is None
    assert reload().postgres.host == "later"


def test_write_profile_merges_into_user_file(isolated_config: Path) -> None:
    target = isolated_config / "user.yaml"
    write_yaml(target, {"postgres": {"host": "base"}, "profiles": {"other": {"s3": {}}}})
    path = write_profile("dev", {"postgres": {"host": "127.0.0.1", "port": 6543}})
    assert path == target
    assert target.stat().st_mode & 0o777 == 0o600
    data = yaml.safe_load(target.read_text("utf-8"))
    assert data["postgres"] == {"host": "base"}
    assert set(data["profiles"]) == {"other", "dev"}
    reloaded = write_profile("dev", {"postgres": {"host": "::1"}})
    assert yaml.safe_load(reloaded.read_text("utf-8"))["profiles"]["dev"] == {
        "postgres": {"host": "::1"}
    }


def test_html_repr_lists_settings_with_sources_and_hides_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARBON_POSTGRES__PASSWORD", "canary-html")
    html = reload()._repr_html_()
    assert "canary-html" not in html
    assert "env CARBON_POSTGRES__PASSWORD" in html
    assert "<table>" in html


def test_tls_verify_combines_verify_and_ca_bundle(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = get_settings()
    assert settings.service("s3").tls_verify() is True
    assert settings.service("s3", ca_bundle=ca).tls_verify() == str(ca)
    assert settings.service("s3", ca_bundle=ca, verify=False).tls_verify() is False
