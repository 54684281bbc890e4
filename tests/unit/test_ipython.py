"""The carbon-sdk IPython extension: cheap to load, `%carbon_doctor` arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from carbon_sdk import ipython
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.health import DEFAULT_TIMEOUT, DoctorReport


def test_loading_the_extension_imports_nothing_heavy() -> None:
    probe = "import json, sys, carbon_sdk.ipython; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert loaded.isdisjoint({"pydantic", "IPython", "pandas", "pyarrow", "yaml", "rich", "typer"})


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


class FakeShell:
    def __init__(self) -> None:
        self.magics_manager = self
        self.magics: dict[str, dict[str, Any]] = {"line": {}, "cell": {}}

    def register_magic_function(self, func: Any, magic_kind: str, magic_name: str) -> None:
        self.magics[magic_kind][magic_name] = func


def test_load_registers_and_unload_removes_the_magic() -> None:
    shell = FakeShell()
    ipython.load_ipython_extension(shell)
    report = shell.magics["line"]["carbon_doctor"]("--timeout 1")
    assert isinstance(report, DoctorReport)
    assert "<table" in report._repr_html_()
    ipython.unload_ipython_extension(shell)
    assert "carbon_doctor" not in shell.magics["line"]
