"""Regression tests of the hardening issue that need no server: typos, encodings, bounds,
secret-free error texts, rich markup, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from carbon_sdk import postgres, trino
from carbon_sdk._redact import basic_credentials, redact
from carbon_sdk.cli import app
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.settings.carbon import configure, reload

CANARY = "p@ss/w%rd x"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- 1. a typo never silently changes the target -------------------------------------------------


def test_unknown_keyword_argument_names_the_closest_setting() -> None:
    configure(postgres={"host": "127.0.0.1", "user": "u"})
    with pytest.raises(ConfigurationError, match=r"postgres\.databse .*did you mean `database`"):
        postgres.query("select current_database()", databse="mlflow")
    with pytest.raises(ConfigurationError, match=r"trino\.catalg .*did you mean `catalog`"):
        trino.query("select 1", catalg="tpch")


def test_unknown_key_in_configure_fails_at_once() -> None:
    with pytest.raises(ConfigurationError, match=r"postgres\.hots \(from argument\).*`host`"):
        configure(postgres={"hots": "db"})


def test_unknown_key_in_config_file_names_file_and_key(isolated_config: Path) -> None:
    path = write(isolated_config / "user.yaml", "postgres:\n  hots: db\n  pasword: x\n")
    with pytest.raises(ConfigurationError) as info:
        reload().postgres  # noqa: B018
    assert f"{path}:postgres.hots" in str(info.value)
    assert "did you mean `host`" in str(info.value)


def test_unknown_section_in_config_file(isolated_config: Path) -> None:
    write(isolated_config / "system.yaml", "profiles:\n  lab:\n    postgress: {host: x}\n")
    with pytest.raises(ConfigurationError, match=r"profiles\.lab\.postgress.*`postgres`"):
        reload()


def test_unknown_env_var_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_POSTGRES__HOTS", "db")
    monkeypatch.setenv("PGHOTS", "ignored: not ours to judge")
    with pytest.raises(ConfigurationError, match=r"env CARBON_POSTGRES__HOTS.*`host`"):
        reload().postgres  # noqa: B018


# -- 3. secrets never leak -------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["*Secret1", "!tag Secret1", "'Secret1"])
def test_yaml_errors_show_position_and_key_not_the_value(isolated_config: Path, value: str) -> None:
    write(isolated_config / "user.yaml", f"postgres:\n  host: db\n  password: {value}\n")
    with pytest.raises(ConfigurationError) as info:
        reload()
    message = str(info.value)
    assert "Secret1" not in message
    assert re.search(r"user\.yaml:\d+:\d+: ", message) and "postgres.password" in message
    out = CliRunner().invoke(app, ["config", "show", "--json"]).output
    assert "Secret1" not in out


def test_every_encoded_form_of_a_secret_is_redacted() -> None:
    from base64 import b64encode
    from urllib.parse import quote, quote_plus

    forms = [
        CANARY,
        quote(CANARY, safe=""),
        quote_plus(CANARY),
        json.dumps(CANARY)[1:-1],
        b64encode(basic_credentials("carbon", CANARY).encode()).decode(),
    ]
    unicode = "pw-ünï"  # as a client quotes a raw body echoing it: b'pw-\xc3\xbc...'
    forms += [repr(unicode.encode())[2:-1], repr(unicode.encode("latin-1"))[2:-1]]
    text = " | ".join(forms)
    secrets = [CANARY, basic_credentials("carbon", CANARY), unicode]
    assert redact(text, secrets).count("***") == len(forms)


def test_malformed_host_is_a_configuration_error_without_the_password() -> None:
    configure(postgres={"host": "[::1", "user": "u", "password": CANARY})
    with pytest.raises(ConfigurationError) as info:
        postgres.query("select 1")
    assert "postgres.host" in str(info.value)
    assert CANARY not in str(info.value) and "p%40ss" not in str(info.value)


def test_ipv6_hosts_are_bracketed_in_uris() -> None:
    configure(postgres={"host": "::1", "port": 41103, "user": "u", "database": "d"})
    uri = postgres.PostgresSettings.load().uri()
    assert uri.startswith("postgresql://u@[::1]:41103/d?")
    assert postgres.PostgresSettings.load(host="[::1]").host == "::1"


# -- 4. bad values are configuration errors, not tracebacks ---------------------------------------


def test_list_setting_from_env_accepts_commas_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_TRINO__CLIENT_TAGS", "a, b")
    assert reload().trino.client_tags == ["a", "b"]
    monkeypatch.setenv("CARBON_TRINO__CLIENT_TAGS", '["c"]')
    assert reload().trino.client_tags == ["c"]
    monkeypatch.setenv("CARBON_TRINO__SESSION_PROPERTIES", "{not json")
    with pytest.raises(ConfigurationError, match=r"trino\.session_properties .*env CARBON_TRINO"):
        reload().trino  # noqa: B018


def test_non_utf8_secret_file_names_the_file(isolated_config: Path) -> None:
    path = write(isolated_config / "secrets" / "postgres__password", b"\xff\xfe")
    with pytest.raises(ConfigurationError, match="not UTF-8") as info:
        reload().postgres  # noqa: B018
    assert str(path) in str(info.value)


@pytest.mark.parametrize("value", ["inf", "nan", "1e300", "-1", "0"])
def test_timeouts_must_be_finite_and_positive(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CARBON_POSTGRES__CONNECT_TIMEOUT", value)
    with pytest.raises(ConfigurationError) as info:
        reload().postgres  # noqa: B018
    assert "postgres.connect_timeout" in str(info.value)
    assert len(str(info.value)) < 400


def test_rich_markup_in_values_is_shown_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("CARBON_POSTGRES__APPLICATION_NAME", "[/]")
    result = runner.invoke(app, ["config", "show", "postgres"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[/]" in result.output
    monkeypatch.setenv("CARBON_POSTGRES__APPLICATION_NAME", "[bold red]x")
    reload()
    result = runner.invoke(app, ["config", "show", "postgres"], env={"COLUMNS": "200"})
    assert "[bold red]x" in result.output


# -- 6. input normalisation ------------------------------------------------------------------------


def test_secret_file_loses_bom_and_one_newline_only(isolated_config: Path) -> None:
    write(isolated_config / "secrets" / "postgres__user", "\ufeffcarbon\n")
    write(isolated_config / "secrets" / "postgres__password", " pw \n\n")
    settings = reload().postgres
    assert settings.user == "carbon"
    assert settings.secret("password") == " pw \n"


def test_empty_values_count_as_unset_and_are_named(
    isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBON_POSTGRES__HOST", "")
    write(isolated_config / "secrets" / "postgres__user", "")
    settings = reload().postgres
    assert settings.host is None and not settings.configured
    with pytest.raises(ConfigurationError) as info:
        settings.require()
    assert "env CARBON_POSTGRES__HOST is set but empty" in str(info.value)
    assert "postgres__user is set but empty" in str(info.value)


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_doctor_rejects_a_timeout_that_is_not_a_positive_number(timeout: str) -> None:
    result = CliRunner().invoke(app, ["doctor", "--timeout", timeout])
    assert result.exit_code == 2


# -- 7. surprises ---------------------------------------------------------------------------------


def test_config_show_exits_non_zero_when_a_service_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARBON_S3__ADDRESSING_STYLE", "sideways")
    result = CliRunner().invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 1
    assert "s3.addressing_style" in result.output


def test_dotted_table_names_are_schema_and_table() -> None:
    assert postgres._table_name("staging.cities", None) == ("staging", "cities")
    assert postgres._table_name("cities", "staging") == ("staging", "cities")
    for bad in ("a.b.c", ".x", "x."):
        with pytest.raises(ValueError, match=r"schema\.table"):
            postgres._table_name(bad, None)


def test_a_non_ascii_bearer_token_is_a_configuration_error() -> None:
    import requests

    from carbon_sdk._auth import BearerAuth

    request = requests.Request("GET", "http://127.0.0.1:1/").prepare()
    with pytest.raises(ConfigurationError, match="non-ASCII") as info:
        BearerAuth(lambda: "tok-ünï-canary")(request)
    assert "canary" not in str(info.value)
