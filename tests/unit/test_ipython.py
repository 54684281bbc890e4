"""The carbon-sdk IPython extension in a real IPython shell: cheap to load, its arguments,
`%carbon doctor` and `%carbon config` (the SQL magics run against servers in tests/magics)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from carbon_sdk import ipython
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.health import DEFAULT_TIMEOUT, DoctorReport
from carbon_sdk.settings.carbon import CarbonSettings, configure, reload

CLIENTS = {"trino", "psycopg", "adbc_driver_postgresql", "adbc_driver_manager", "boto3", "botocore"}
CLIENTS |= {"confluent_kafka", "mlflow", "ray", "datahub", "sqlalchemy", "requests", "tqdm"}
HEAVY = CLIENTS | {"pydantic", "pydantic_settings", "pandas", "pyarrow", "polars", "yaml", "rich"}


def test_importing_the_extension_module_imports_nothing_heavy() -> None:
    probe = "import json, sys, carbon_sdk.ipython; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert loaded.isdisjoint({*HEAVY, "IPython", "typer"})


def test_load_ext_in_a_fresh_shell_imports_no_client() -> None:
    probe = (
        "import json, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "before = set(sys.modules)\n"
        "shell.run_line_magic('load_ext', 'carbon_sdk')\n"
        "magics = shell.magics_manager.magics\n"
        "print(json.dumps({'new': sorted(set(sys.modules) - before),\n"
        "    'line': sorted(magics['line']), 'cell': sorted(magics['cell'])}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    found = json.loads(out.stdout.splitlines()[-1])
    new = {n.split(".")[0] for n in found["new"]} - {"IPython"}  # %load_ext's own module
    assert new == {"carbon_sdk"}, found["new"]
    assert {"carbon", "carbon_doctor"} <= set(found["line"])
    assert {"trino", "postgres"} <= set(found["cell"])


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "carbon_sdk")
    yield shell
    shell.run_line_magic("unload_ext", "carbon_sdk")
    reload()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", ((), DEFAULT_TIMEOUT)),
        ("trino", (("trino",), DEFAULT_TIMEOUT)),
        ("postgres s3 --timeout 2", (("postgres", "s3"), 2.0)),
        ("--timeout=0.5 trino", (("trino",), 0.5)),
    ],
)
def test_doctor_arguments(line: str, expected: tuple[tuple[str, ...], float]) -> None:
    assert ipython.parse_doctor_args(line) == expected


@pytest.mark.parametrize("line", ["--timeout", "--timeout x", "--timeout=0", "--timeout -1", "-v"])
def test_bad_doctor_arguments_say_what_is_wrong(line: str) -> None:
    with pytest.raises(ConfigurationError, match=r"timeout|unknown option"):
        ipython.parse_doctor_args(line)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("", ipython.SqlArgs(None, "pandas")),
        ("-o df", ipython.SqlArgs("df", "pandas")),
        ("--out=df --as arrow", ipython.SqlArgs("df", "arrow")),
        ("--as=polars", ipython.SqlArgs(None, "polars")),
    ],
)
def test_sql_arguments(line: str, expected: ipython.SqlArgs) -> None:
    assert ipython.parse_sql_args(line, "trino") == expected


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("--as csv", "not a table format"),
        ("-o 1x", "Python variable name"),
        ("-o", "Python variable name"),
        ("select", "unexpected 'select'"),
    ],
)
def test_bad_sql_arguments_say_what_is_wrong(line: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ipython.parse_sql_args(line, "trino")


def test_carbon_doctor_and_its_alias(shell: InteractiveShell) -> None:
    for report in (
        shell.run_line_magic("carbon", "doctor --timeout 1"),
        shell.run_line_magic("carbon_doctor", "--timeout 1"),
    ):
        assert isinstance(report, DoctorReport)
        assert "<table" in report._repr_html_()


def test_carbon_config_shows_sources_and_hides_secrets(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBON_POSTGRES__HOST", "db.example.org")
    monkeypatch.setenv("CARBON_POSTGRES__PASSWORD", "s3cr3t-value")
    configure(trino={"host": "trino.example.org"})
    everything = shell.run_line_magic("carbon", "config")
    assert isinstance(everything, CarbonSettings)
    one = shell.run_line_magic("carbon", "config postgres")
    for html in (everything._repr_html_(), one._repr_html_()):
        assert "db.example.org" in html and "CARBON_POSTGRES__HOST" in html
        assert "s3cr3t-value" not in html and "***" in html
    assert "s3cr3t-value" not in repr(one)
    assert "trino.example.org" in shell.run_line_magic("carbon", "config trino")._repr_html_()
    with pytest.raises(ConfigurationError, match=r"no such service|trino"):
        shell.run_line_magic("carbon", "config trinoo")


def test_unknown_carbon_command_shows_the_usage(shell: InteractiveShell) -> None:
    with pytest.raises(ConfigurationError, match=r"%carbon doctor .* \| %carbon config"):
        shell.run_line_magic("carbon", "docter")


def test_unload_removes_the_magics(shell: InteractiveShell) -> None:
    shell.run_line_magic("unload_ext", "carbon_sdk")
    magics = shell.magics_manager.magics
    assert not {"carbon", "carbon_doctor"} & set(magics["line"])
    assert not {"trino", "postgres"} & set(magics["cell"])
    shell.run_line_magic("load_ext", "carbon_sdk")  # the fixture unloads it again
