"""The connector contract: every entry of the registry is a complete connector, and every place
that spells the connectors out for static typing agrees with the registry."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import carbon_sdk
from carbon_sdk import doctor as run_doctor
from carbon_sdk._classify import ErrorTable, untrusted_certificate
from carbon_sdk._registry import CONNECTORS, Connector
from carbon_sdk.cli import app
from carbon_sdk.health import Status
from carbon_sdk.settings import ServiceSettings, env_var
from carbon_sdk.settings.carbon import configure
from carbon_sdk.settings.schema import markdown

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ("trino", "boto3", "botocore", "mlflow", "psycopg", "datahub", "ray", "confluent_kafka")
connectors = pytest.mark.parametrize("entry", list(CONNECTORS.values()), ids=list(CONNECTORS))


def _type_checking_block(tree: ast.AST) -> list[ast.stmt]:
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            return node.body
    raise AssertionError("no `if TYPE_CHECKING:` block")


def _imported_connectors(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.ImportFrom) and node.module == "carbon_sdk":
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] in CONNECTORS:
            names.add((node.module or "").split(".")[-1])
    return names


def test_package_names_every_connector_for_type_checkers() -> None:
    tree = ast.parse((ROOT / "carbon_sdk" / "__init__.py").read_text())
    imported = _imported_connectors(_type_checking_block(tree))
    assert imported == set(CONNECTORS), (
        "carbon_sdk/__init__.py: the TYPE_CHECKING imports must name exactly the registry's "
        f"connectors; missing {set(CONNECTORS) - imported}, extra {imported - set(CONNECTORS)}"
    )
    exported = set(carbon_sdk.__all__)
    assert set(CONNECTORS) <= exported, (
        f"carbon_sdk.__all__ lacks {set(CONNECTORS) - exported}: add them"
    )


def test_carbon_settings_types_every_connector() -> None:
    tree = ast.parse((ROOT / "carbon_sdk" / "settings" / "carbon.py").read_text())
    cls = next(
        n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "CarbonSettings"
    )
    typed = {
        n.target.id
        for n in _type_checking_block(cls)
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
    }
    assert typed == set(CONNECTORS), (
        "settings/carbon.py CarbonSettings: the typed attributes must be the registry's "
        f"connectors; missing {set(CONNECTORS) - typed}, extra {typed - set(CONNECTORS)}"
    )
    imported = _imported_connectors(_type_checking_block(tree))
    assert imported == set(CONNECTORS), f"settings/carbon.py TYPE_CHECKING imports: {imported}"


@connectors
def test_module_provides_settings_check_and_error_table(entry: Connector) -> None:
    module = entry.load()
    assert module is getattr(carbon_sdk, entry.name)
    assert issubclass(module.Settings, ServiceSettings)
    assert module.Settings.service == entry.name
    assert callable(module.check)
    assert isinstance(getattr(module, "ERRORS", None), ErrorTable), (
        f"{entry.module_name} needs an ERRORS table (carbon_sdk._classify.ErrorTable)"
    )
    assert module.Settings.required, f"{entry.name}: which settings make it configured?"
    assert module.Settings.endpoint_fields


@connectors
def test_an_untrusted_certificate_names_the_ca_bundle_setting(entry: Connector) -> None:
    """The fix every connector gives when the server's certificate chain is not verified (the
    real clients' messages: tests/reliability/test_tls.py); a host name mismatch is not that."""
    settings = entry.settings_class().load(ca_bundle="/etc/ca/private.pem")
    fix = untrusted_certificate(
        settings, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    assert fix is not None and "not trusted" in fix
    assert f"{entry.name}.ca_bundle=/etc/ca/private.pem" in fix
    assert env_var(entry.name, "ca_bundle") in fix
    mismatch = "certificate verify failed: Hostname mismatch, certificate is not valid for 'x'"
    assert untrusted_certificate(settings, mismatch) is None
    expired = "certificate verify failed: certificate has expired"
    assert untrusted_certificate(settings, expired) is None
    assert untrusted_certificate(settings, "connection refused") is None


# required fields whose values are validated as URLs or host:port lists
EXAMPLES = {"endpoint_url": "http://example-value", "bootstrap_servers": "example-value:9092"}


@connectors
def test_endpoint_names_where_the_service_is(entry: Connector) -> None:
    cls = entry.settings_class()
    configure(**{entry.name: {f: EXAMPLES.get(f, "example-value") for f in cls.required}})
    settings = cls.load()
    assert settings.configured
    assert "example-value" in settings.endpoint or cls.endpoint_fields[0] not in cls.required


@connectors
def test_extra_is_declared_and_part_of_all(entry: Connector) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert entry.extra in extras, f"pyproject.toml has no extra [{entry.extra}]"
    (everything,) = extras["all"]
    assert entry.extra in everything.split("[")[1].rstrip("]").split(","), (
        f"[all] does not include [{entry.extra}]"
    )


@connectors
def test_docs_page_exists_and_is_linked_from_the_readme(entry: Connector) -> None:
    page = ROOT / "docs" / f"{entry.name}.md"
    assert page.is_file(), f"docs/{entry.name}.md is missing"
    assert f"(docs/{entry.name}.md)" in (ROOT / "README.md").read_text(), (
        f"README.md does not link docs/{entry.name}.md"
    )


@connectors
def test_config_show_and_schema_list_every_field(entry: Connector) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["config", "show", entry.name, "--json"])
    assert shown.exit_code == 0, shown.output
    rows = json.loads(shown.output)["settings"]
    fields = set(entry.settings_class().model_fields)
    assert {r["setting"] for r in rows} == fields
    described = runner.invoke(app, ["config", "schema", entry.name, "--json"])
    assert described.exit_code == 0, described.output
    specs = json.loads(described.output)["services"][entry.name]["fields"]
    assert {s["name"] for s in specs} == fields
    for spec in specs:
        assert spec["env_var"] == env_var(entry.name, spec["name"])
        assert spec["config_key"] == f"{entry.name}.{spec['name']}"
        variants = [spec["json_schema"], *spec["json_schema"].get("anyOf", [])]
        assert spec["secret"] == any(v.get("writeOnly") is True for v in variants)


@connectors
def test_doctor_reports_it_not_configured_with_the_variable_to_set(entry: Connector) -> None:
    (result,) = run_doctor(entry.name).results
    assert result.service == entry.name
    assert result.status is Status.NOT_CONFIGURED
    assert env_var(entry.name, entry.settings_class().required[0]) in (result.hint or "")


@connectors
def test_module_imports_no_client_library(entry: Connector) -> None:
    probe = f"import {entry.module_name}, sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert loaded.isdisjoint(CLIENTS), loaded & set(CLIENTS)


def test_settings_reference_is_current() -> None:
    page = ROOT / "docs" / "settings-reference.md"
    assert page.is_file() and page.read_text() == markdown(), (
        "docs/settings-reference.md is stale: run "
        "`carbon-sdk config schema --markdown > docs/settings-reference.md`"
    )
