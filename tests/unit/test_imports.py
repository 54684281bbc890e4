"""`import carbon_sdk` is cheap; connectors import only their own client; missing extras say
what to install. Each check runs in a fresh interpreter, where sys.modules starts empty."""

from __future__ import annotations

import json
import subprocess
import sys

CLIENTS = ("trino", "boto3", "botocore", "mlflow", "psycopg", "datahub", "ray", "confluent_kafka")
HEAVY = (*CLIENTS, "pandas", "pyarrow", "pydantic", "yaml", "typer", "rich")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout.splitlines()[-1])}


def test_import_carbon_sdk_imports_no_client_and_no_pydantic() -> None:
    assert loaded_after("import carbon_sdk").isdisjoint(HEAVY)


def test_connector_import_loads_only_its_own_client() -> None:
    loaded = loaded_after("from carbon_sdk import postgres")
    assert loaded.isdisjoint(CLIENTS), loaded & set(CLIENTS)
    connected = loaded_after(
        "from carbon_sdk import postgres\n"
        "from carbon_sdk._lazy import import_client\n"
        "import_client('psycopg', 'postgres')"
    )
    assert "psycopg" in connected
    assert connected.isdisjoint({"boto3", "trino", "mlflow", "ray"})


def test_missing_extra_names_the_pip_command() -> None:
    code = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # what an absent package looks like to import\n"
        "import carbon_sdk\n"
        "from carbon_sdk import postgres\n"
        "carbon_sdk.configure(postgres={'host': 'h', 'user': 'u'})\n"
        "try:\n"
        "    postgres.connect()\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "MissingExtraError" in out.stdout
    assert "pip install 'carbon-sdk[postgres]'" in out.stdout


def test_unknown_attribute_is_an_attribute_error() -> None:
    import carbon_sdk

    try:
        carbon_sdk.nonexistent  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "nonexistent" in str(exc)
    else:
        raise AssertionError("expected AttributeError")
